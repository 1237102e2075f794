"""Compiled programs kept on disk between runs, so that a warm start neither traces nor lowers.

JAX's persistent compilation cache skips compiling on a second run, but the run still traces the
function and lowers it to StableHLO before it can look the entry up; for the main job that was most
of its time after `import jax` (bench/results/cpu-2core-2026-12-02.md). `cached_jit(fn, key,
**jit_kwargs)` stands in for `jax.jit(fn, **jit_kwargs)` where every argument is an array: the first
call with new shapes compiles as jit would and writes the executable
(`jax.experimental.serialize_executable`) to the cache folder, under a name hashed from everything
that can change the program (`folder`, `program_key`); a later call, in this run or another, loads
it instead. A file that cannot be read or written is compiled around, never an error, and a file
from other code, versions, settings or hardware is never used.

`key` is what the function closes over (configs, optimizer settings): the caller's part of the name.

Trust: the files are machine code that gets run, as the entries of JAX's compilation cache are, so the
folder must be the user's own (it is inside JAX's cache folder, ~/.cache/microjax/jax by default). Any
edit to the project's source starts a new folder, so the first run after one compiles everything.
"""

import contextlib
import hashlib
import importlib
import os
import pickle
import platform
import shutil
import sys
import time
from pathlib import Path

import jax

FOLDER = "microjax-executables"  # inside JAX's cache folder, beside its entries (it touches only its own *-cache files)
# An executable that JAX's compilation cache handed back does not serialize again (its functions are
# missing when the copy runs: jax 0.10.2, CPU), so what is saved must come from a fresh compile: the
# compile options carry a random number in an option that only says how much a debug printout of
# buffers shows, so JAX's cache has no entry for it; one that came from the cache all the same is
# run but not saved. Nor does JAX's cache keep an entry for a salted program (`_no_jax_cache_entry`):
# with a random salt no run could ever find it again, and each would stay on disk for good.
SALT_OPTION = "xla_debug_buffer_assignment_show_max"
CACHE_HIT = "/jax/compilation_cache/cache_hits"
# environment that reaches the compiler or the runtime
ENV_PREFIXES = ("JAX_", "XLA_", "TF_", "LIBTPU", "CUDA_", "NVIDIA_", "TPU_")


def enabled():
    """Only with JAX's compilation cache on in a local folder (as the entry points turn it on), in one process."""
    where = jax.config.jax_compilation_cache_dir
    return bool(where) and "://" not in where and jax.config.jax_enable_compilation_cache and jax.process_count() == 1


KEEP_SECONDS = 7 * 86400  # a folder of executables for other code or versions, unused this long, is removed


def folder():
    """This code's folder: one per version of the source, the libraries and the machine."""
    version = hashlib.sha256(_fixed_part().encode()).hexdigest()[:16]
    return Path(jax.config.jax_compilation_cache_dir) / FOLDER / version


def _tidy(current):
    """Remove the folders of other code or versions that no run has used for KEEP_SECONDS."""
    now = time.time()
    for other in current.parent.iterdir():
        try:
            if other != current and now - other.stat().st_mtime > KEEP_SECONDS:
                shutil.rmtree(other)
        except OSError:
            pass


def _source_digest():
    """sha256 over the source of the project's own packages: any edit makes every file stale."""
    h = hashlib.sha256()
    for package in ("models", "train"):
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _machine():
    """The CPU the executables were built for (XLA compiles for the host's instruction set)."""
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n")[0]
        return [line for line in first.splitlines() if line.startswith(("model name", "flags", "vendor_id"))]
    except OSError:
        return [platform.machine(), platform.processor()]


_FIXED = []


def _fixed_part():
    """What is the same for every program of this process: versions, source, hardware."""
    if not _FIXED:
        import jaxlib
        import numpy

        versions = {name: getattr(sys.modules.get(name), "__version__", None)
                    for name in ("optax", "chex", "ml_dtypes")}
        devices = [(d.id, d.platform, d.device_kind) for d in jax.devices()]
        _FIXED.append(repr((sys.version, jax.__version__, jaxlib.__version__, numpy.__version__, versions,
                            jax.devices()[0].client.platform_version, devices, _machine(), _source_digest())))
    return _FIXED[0]


def _settings():
    """What a process may change as it goes: JAX's settings, and the environment the compiler reads."""
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES))
    return repr((sorted((k, repr(v)) for k, v in jax.config.values.items()), env))


def _spec(x):
    """An argument's shape, dtype and placement (a Python scalar: its type)."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        sharding = getattr(x, "sharding", None)
        where = (repr(sharding), [d.id for d in sharding._device_assignment]) if sharding is not None else None
        return (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)), where)
    return type(x).__name__


def program_key(name, key, jit_kwargs, args):
    leaves, tree = jax.tree.flatten(args)
    text = repr((name, key, sorted((k, repr(v)) for k, v in jit_kwargs.items()), repr(tree),
                 [_spec(x) for x in leaves], _settings()))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _devices(args):
    for x in jax.tree.leaves(args):
        sharding = getattr(x, "sharding", None)
        if sharding is not None:
            return list(sharding._device_assignment)
    return jax.devices()[:1]


def load(path, args):
    from jax.experimental import serialize_executable

    try:
        saved = pickle.loads(path.read_bytes())
        os.utime(path.parent)  # in use: `_tidy` keeps it
        return serialize_executable.deserialize_and_load(saved["executable"], saved["in_tree"], saved["out_tree"],
                                                         execution_devices=_devices(args))
    except Exception:  # a damaged or unreadable file: compile instead (and overwrite it)
        return None


def save(path, compiled):
    from jax.experimental import serialize_executable

    try:
        executable, in_tree, out_tree = serialize_executable.serialize(compiled)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps({"executable": executable, "in_tree": in_tree, "out_tree": out_tree}))
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        _tidy(path.parent)
    except Exception:  # a full disk, a read-only folder, an executable that does not serialize: no cache
        pass


def _no_jax_cache_entry():
    """For this thread, JAX's cache writes no entry: only programs that compiled for longer than this are
    written (JAX's own setting, set here as its thread-local override), and none does. Where a version of
    JAX lacks the setting, entries are written as before."""
    from jax._src import config as jax_config  # the setting's thread-local form is not public

    setting = getattr(jax_config, "persistent_cache_min_compile_time_secs", None)
    return setting(1e30) if callable(setting) else contextlib.nullcontext()


class cached_jit:
    """`jax.jit(fn, **jit_kwargs)` whose executables outlive the process (see the module's docstring)."""

    def __init__(self, fn, key=None, name=None, **jit_kwargs):
        self.fn, self.jitted = fn, jax.jit(fn, **jit_kwargs)
        self.name = name or getattr(fn, "__name__", "fn").strip("<>")
        self.key, self.jit_kwargs, self.compiled = key, jit_kwargs, {}
        self.prepared = "compiled"  # how the last new program came: "compiled", or "loaded" from the cache folder

    def lower(self, *args):
        return self.jitted.lower(*args)

    def _cache_size(self):
        """As jit's: how many programs this process holds ready (compiled or loaded)."""
        return len(self.compiled)

    def __call__(self, *args):
        return self.prepare(*args)(*args)

    def prepare(self, *args):
        """The executable for arguments like these (arrays or `jax.ShapeDtypeStruct`s), compiled or loaded
        now if this process has not yet: a caller may prepare one ahead, on another thread. Within the
        process it is found again by the arguments alone (JAX's settings are read at compile time)."""
        leaves, tree = jax.tree.flatten(args)
        # in the process, the shardings themselves (hashable) rather than their text: this runs every dispatch
        specs = (tree, tuple((x.shape, x.dtype, getattr(x, "weak_type", False), getattr(x, "sharding", None))
                             if hasattr(x, "shape") and hasattr(x, "dtype") else type(x) for x in leaves))
        compiled = self.compiled.get(specs)
        if compiled is None:
            compiled = self.compiled[specs] = self._compile(args)
        return compiled

    def _compile(self, args):
        if not enabled():
            self.prepared = "compiled"
            return self.jitted.lower(*args).compile()
        name = program_key(self.name, self.key, self.jit_kwargs, args)
        path = folder() / name
        compiled = load(path, args) if path.exists() else None
        self.prepared = "compiled" if compiled is None else "loaded"
        if compiled is None:
            salt = 10**6 + int.from_bytes(os.urandom(4), "little")
            options = {**(self.jit_kwargs.get("compiler_options") or {}), SALT_OPTION: salt}
            hits = []
            listener = lambda event, **_: hits.append(event) if event == CACHE_HIT else None  # noqa: E731
            jax.monitoring.register_event_listener(listener)
            try:
                with _no_jax_cache_entry():
                    compiled = jax.jit(self.fn, **{**self.jit_kwargs, "compiler_options": options}).lower(*args).compile()
            finally:
                jax.monitoring.unregister_event_listener(listener)
            if not hits:  # from JAX's cache only if this program's file was lost: then it stays unsaved
                save(path, compiled)
        return compiled
