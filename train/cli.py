"""What every command shares: flags made from the library's config (checked numbers, choices, help with
defaults), outputs checked before any work, a lock on an output folder, JAX's compilation cache, and
`run`, which ends every command with a one-line message and an exit status, never a traceback:
`error: ...` (status 2) for bad input, `stopped by SIGINT` (128 + the signal) for a signal, and quietly
(141, as a process killed by SIGPIPE) when the reader of its output has gone, as `| head` does.

The library (train/lib/) never imports this module.
"""

import argparse
import dataclasses
import datetime
import errno
import fcntl
import gc
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from . import exit_on_signal
from .lib.config import SEED as SEED_RANGE, TEMPERATURE as TEMPERATURE_RANGE, Range
from .lib.errors import UserError

__all__ = ["UserError", "run", "ArgumentParser", "number", "add_config_flags", "output_file", "output_dir",
           "FolderLock", "enable_compilation_cache", "SEED", "TEMPERATURE", "PICTURES", "NAMES_SAMPLING",
           "TEXT_SAMPLING", "print_passages"]


def run(main, argv=None):
    """Call main(argv) and exit with its status (None: 0), ending in one line, never a traceback.

    A stop signal ends the command at once (`train.exit_on_signal`), except while it trains, where
    train/lib/loop.py stops it at a saved checkpoint instead."""
    exit_on_signal()
    try:
        status = main(argv)
        sys.stdout.flush()  # here, so that a reader gone by now is a broken pipe caught below
    except UserError as e:
        _stderr(f"error: {e}")
        status = 2
    except KeyboardInterrupt:  # raised by code that installed Python's own handler again
        _stderr("stopped by SIGINT")
        status = 128 + signal.SIGINT
    except OSError as e:
        if e.errno != errno.EPIPE:
            _stderr(f"error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
            status = 1
        else:
            status = 128 + signal.SIGPIPE
        _silence_stdout()
    # Every file is closed by now. What is left is the interpreter's exit, whose cycle collection walks
    # each of the objects JAX made (most of the whole process's) to free memory the system takes back
    # anyway: frozen, they are skipped, which takes a fifth off the main job (bench/results/).
    gc.freeze()
    sys.exit(status)


def _stderr(line):
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _silence_stdout():
    """Point stdout at /dev/null, so that Python's own flush at exit does not report the broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are the project's one-line errors (`error: ...`, exit status 2), not a
    usage block: `run` prints them, and tests calling main() directly see a UserError."""

    def error(self, message):
        raise UserError(message)


def number(kind, low=None, high=None, *, above=None, below=None):
    """An argparse type: an int, or a finite float, within the bounds given (low/high inclusive,
    above/below exclusive). Every numeric flag goes through one, so zero, negative, huge, nan and inf
    are refused before any work, with a message that states what would do."""
    return _checked(Range(kind, low, high, above, below))


def _checked(allowed):
    def convert(text):
        try:
            value = allowed.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed.describe()}, got {text!r}") from None
        if not allowed.contains(value):
            raise argparse.ArgumentTypeError(f"expected {allowed.describe()}, got {text!r}")
        return value

    convert.kind = allowed.kind  # for tests
    convert.bounds = {"low": allowed.low, "high": allowed.high, "above": allowed.above, "below": allowed.below}
    return convert


def add_config_flags(parser, config_class, names=None, highest=None, prefix="", help=None):
    """A flag per field of a config dataclass (or the `names` given), its type, choices and help taken
    from the field: each flag defaults to None, so that the flags given can be told from the rest (a
    resumed run refuses some), and the help states the dataclass's default. `highest` lowers upper
    bounds, {field: limit}; `prefix` begins each help text; `help` replaces some, {field: text}."""
    for f in dataclasses.fields(config_class):
        if names is not None and f.name not in names:
            continue
        rule, kind = f.metadata, None
        allowed = rule["range"]
        if allowed is not None:
            if highest and f.name in highest:
                allowed = dataclasses.replace(allowed, high=highest[f.name])
            kind = _checked(allowed)
        default = "" if f.default is None else f" ({f.default})"
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, choices=rule["choices"], default=None,
                            help=f"{prefix}{(help or {}).get(f.name, rule['help'])}{default}")


SEED = _checked(SEED_RANGE)
TEMPERATURE = _checked(TEMPERATURE_RANGE)


# what a command samples when no flag says: microgpt's 20 names at 0.5, or nanoGPT's sample.py for a text
NAMES_SAMPLING = {"num_samples": 20, "temperature": 0.5}
TEXT_SAMPLING = {"num_samples": 1, "temperature": 0.8, "max_new_tokens": 500}


def print_passages(out, params, config, tokenizer, keys, prompt, max_new_tokens, temperature, top_k=None):
    """A text model's passages, one per key, to `out` (write and flush): each the prompt, then every
    character as it is drawn (train/lib/generate.py), with a line `---` between passages. Each passage's
    prompt is checked before anything of it is printed."""
    from .lib.generate import stream  # jax: after the flags are checked

    for i, key in enumerate(keys):
        pieces = stream(params, config, tokenizer, key, prompt, max_new_tokens, temperature, top_k)
        out.write(("---\n" if i else "") + prompt)
        for piece in pieces:  # a reader that has gone (`| head`) is a BrokenPipeError here, for `run`
            out.write(piece)
            out.flush()
        out.write("\n")


PICTURES = (".png", ".svg", ".pdf")  # what the picture flags write, the format told by the suffix


def output_file(path, flag, suffixes=None):
    """Make sure `path` can be written before any work: create its folder, try a file beside it, and
    (for pictures) that its suffix names a format we write. Returns the path; a path that cannot be
    written is a UserError naming the flag."""
    if path is None:
        return None
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: the name must end in {', '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; give a file name")
    _try_writing(path.parent, flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {flag} {path}: permission denied")
    return path


def output_dir(path, flag):
    """The same for a folder (e.g. --out): created if missing, and a file can be made in it."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder")
    _try_writing(path, flag, path)
    return path


def _try_writing(folder, flag, path):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"cannot write {flag} {path}: {e.strerror or e}") from None


class FolderLock:
    """An exclusive lock on an output folder for the life of a run, so two runs never write one checkpoint.

    `flock` on DIR/.lock: the operating system drops it when the holder exits, however it dies
    (kill -9, power loss), so a lock file left by a dead run never blocks the next one. The file
    records who holds it, for the message the second run shows.
    """

    NAME = ".lock"

    def __init__(self, folder, flag="--out"):
        self.path = Path(folder) / self.NAME
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise UserError(f"{flag} {folder} is in use by a live run ({holder}); wait for it to finish "
                            "or choose another folder") from None
        self.file.seek(0)
        self.file.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: "
                        f"{' '.join(sys.orig_argv)}")
        self.file.flush()

    def release(self):
        self.file.close()  # closing drops the flock; the file stays, harmless

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def enable_compilation_cache():
    """Turn on JAX's persistent compilation cache, so a second run skips compiling: in
    ~/.cache/microjax/jax unless JAX_COMPILATION_CACHE_DIR names another place."""
    import jax

    from .lib.data import cache_dir

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
