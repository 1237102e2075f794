"""The README is a tested contract: it opens with the commands CI runs, and every block in it runs as
written, from an empty folder, with a fresh home directory and none of our environment variables."""

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import GOLDEN_SAMPLES, ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = [(lang, text) for lang, text in re.findall(r"^```(bash|python)\n(.*?)^```", README, re.S | re.M)]
OPENING = BLOCKS[0][1].strip().splitlines()


def test_readme_opens_with_the_main_job_and_the_test_command():
    main, tests = OPENING
    assert main.endswith("python -m train.gpt") and "pip install" in main
    assert tests.endswith("python -m pytest -q") and "[test]" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """An empty folder to run in and an environment as a new user's: a fresh home (so no compilation
    cache), no JAX_/XLA_/MICROJAX_ variables, and the installed project's python first on PATH."""
    home, work = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("work")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "MICROJAX_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    (work / ".venv").symlink_to(Path(sys.prefix))  # the opening block's .venv: the one these tests run in
    return work, env


def run_in(fresh, args, timeout=600):
    work, env = fresh
    return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_first_command_prints_microgpts_names_on_a_fresh_machine(fresh):
    """Everything after the install: the main job, from an empty folder, with the shipped data only."""
    main_job = OPENING[0].split(" && ")[-1]
    result = run_in(fresh, ["bash", "-c", main_job])
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^sample +\d+: (\w*)$", result.stdout, re.M) == GOLDEN_SAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("lang, text", BLOCKS[1:], ids=[f"{i + 1}-{text.splitlines()[0][:40]}"
                                                         for i, (_, text) in enumerate(BLOCKS[1:])])
def test_every_block_runs_as_written(fresh, lang, text):
    args = ["bash", "-euo", "pipefail", "-c", text] if lang == "bash" else [sys.executable, "-c", text]
    result = run_in(fresh, args)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not re.search(r"^error:", result.stderr, re.M), result.stderr


PAGES = [README] + [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))] + [(ROOT / "bench" / "README.md").read_text()]
INLINE = sorted({m for page in PAGES for m in re.findall(r"`python -m (train\.\w+|bench(?![.\w])|notebooks)([^`]*)`", page)})


@pytest.mark.parametrize("module, flags", INLINE, ids=[f"{m}{f}" for m, f in INLINE])
def test_every_inline_command_has_valid_flags(module, flags, capsys):
    module = importlib.import_module(module if module.startswith("train.") else f"{module}.__main__")
    args = shlex.split(flags.split("|")[0])  # the command itself, before a pipe
    if "--help" in args:
        with pytest.raises(SystemExit, match="0"):
            module.build_parser().parse_args(args)
    else:
        module.build_parser().parse_args(args)


def test_every_baseline_command_named_exists():
    """`python -m bench.<baseline>` commands import torch, which the test extra does not install: each
    named must at least be a module of bench/."""
    named = {m for page in PAGES for m in re.findall(r"`python -m bench\.(\w+)", page)}
    assert named and all((ROOT / "bench" / f"{m}.py").exists() for m in named), named


@pytest.mark.slow
def test_the_blocks_write_only_under_runs(fresh):
    """What the blocks above wrote in the empty folder they ran in: runs/ alone (ignored by git), never
    pictures or files in the clone's root."""
    work, _ = fresh
    assert sorted(p.name for p in work.iterdir()) == [".venv", "runs"]
    assert "/runs/" in (ROOT / ".gitignore").read_text().split()


def test_the_readme_says_how_to_open_the_lessons_and_the_extra_exists():
    import tomllib

    learn = README[README.index("## Learn") : README.index("## The main job")]
    assert "pip install -e '.[notebooks]'" in learn and "jupyter lab notebooks/" in learn
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("jupyterlab") for req in extras["notebooks"])
    assert {"nbformat", "nbclient", "ipykernel"} <= {re.split(r"[<>=]", r)[0] for r in extras["notebooks"]}
