"""The executables kept between runs (train/lib/compiled.py): a second run loads rather than traces, a
changed program never loads an old file, and a bad file is compiled around."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train.lib import compiled


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """JAX's compilation cache, and so ours, in a fresh folder, as the entry points turn it on."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    yield tmp_path / compiled.FOLDER
    jax.config.update("jax_compilation_cache_dir", before)


def counting(traces):
    def f(x, y):
        traces.append(1)  # runs once a trace
        return jnp.sin(x) @ y + 1.0, x * 2

    return f


def test_a_new_instance_loads_the_saved_executable_without_tracing(cache):
    traces = []
    x, y = jnp.arange(12.0).reshape(3, 4), jnp.ones(4)
    fresh = compiled.cached_jit(counting(traces), key=("a", 1))
    first = fresh(x, y)
    assert traces == [1] and len(list(cache.rglob("f-*"))) == 1 and fresh.prepared == "compiled"
    next_run = compiled.cached_jit(counting(traces), key=("a", 1))  # what the next run does
    again = next_run(x, y)
    assert traces == [1] and next_run.prepared == "loaded", "loaded, not traced"
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[0], jnp.sin(x) @ y + 1.0)


def test_another_key_shape_or_dtype_is_another_program(cache):
    traces = []
    x = jnp.ones((2, 2))
    compiled.cached_jit(counting(traces), key=1)(x, x)
    compiled.cached_jit(counting(traces), key=2)(x, x)
    compiled.cached_jit(counting(traces), key=1)(jnp.ones((3, 3)), jnp.ones((3, 3)))
    compiled.cached_jit(counting(traces), key=1)(x.astype(jnp.float32), x.astype(jnp.float32))
    assert len(traces) == len(list(cache.rglob("f-*"))) == 4


def test_a_damaged_file_is_compiled_around_and_replaced(cache):
    traces = []
    x = jnp.ones(3)
    compiled.cached_jit(counting(traces), key=0)(x, x)
    (path,) = cache.rglob("f-*")
    path.write_bytes(b"not an executable")
    out = compiled.cached_jit(counting(traces), key=0)(x, x)
    np.testing.assert_allclose(out[0], 3 * np.sin(1.0) + 1.0)
    assert len(traces) == 2 and path.read_bytes() != b"not an executable"
    compiled.cached_jit(counting(traces), key=0)(x, x)
    assert len(traces) == 2


def test_the_folder_changes_with_the_source(cache, monkeypatch):
    before = compiled.folder()
    monkeypatch.setattr(compiled, "_FIXED", [])
    monkeypatch.setattr(compiled, "_source_digest", lambda: "edited")
    assert compiled.folder() != before


def test_folders_of_other_code_unused_for_a_week_are_removed(cache):
    x = jnp.ones(3)
    old, recent = cache / "old", cache / "recent"
    for folder in (old, recent):
        folder.mkdir(parents=True)
    week_ago = os.path.getmtime(old) - compiled.KEEP_SECONDS - 60
    os.utime(old, (week_ago, week_ago))
    compiled.cached_jit(counting([]), key=0)(x, x)
    assert not old.exists() and recent.exists()


RUN = """
import sys, jax, jax.numpy as jnp
from train.cli import enable_compilation_cache
from train.lib import compiled
enable_compilation_cache()
traces = []
def f(x):
    traces.append(1)
    return jnp.tanh(x) * jnp.exp(x) + x.sum()
out = compiled.cached_jit(f, key="job")(jnp.linspace(0.0, 1.0, 50))
print(len(traces), float(out.sum()))
"""


@pytest.mark.slow
def test_across_processes_with_no_dead_entries_in_jax_cache(tmp_path):
    """An executable JAX's own cache returns does not run once serialized again (jax 0.10.2, CPU), so
    what is saved is always a fresh compile, salted; JAX's cache keeps no entry for it (none could be
    found again), and a lost file of ours is compiled again."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    jax_cache = tmp_path / "microjax" / "jax"

    def run():
        out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True, check=True)
        return out.stdout.split()

    first = run()
    assert first[0] == "1"
    assert not list(jax_cache.glob("jit_f-*")), "no entry of the salted program in JAX's cache"
    assert run() == ["0", first[1]], "loaded without tracing, the same numbers"
    for path in (jax_cache / compiled.FOLDER).rglob("f-*"):
        path.unlink()  # ours lost
    assert run() == ["1", first[1]]
    assert run()[1] == first[1] and not list(jax_cache.glob("jit_f-*"))


def test_a_setting_changed_in_the_process_is_another_program(cache):
    traces = []
    x = jnp.ones(3)
    compiled.cached_jit(counting(traces), key=0)(x, x)
    with jax.default_matmul_precision("highest"):
        compiled.cached_jit(counting(traces), key=0)(x, x)
    assert len(traces) == len(list(cache.rglob("f-*"))) == 2
