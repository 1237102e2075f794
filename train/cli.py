"""What every entry point shares: one-line errors for bad input, checked flags and output paths, a lock
on an output folder, and JAX's compilation cache."""

import argparse
import datetime
import fcntl
import math
import os
import socket
import sys
import tempfile
from pathlib import Path


class UserError(Exception):
    """A problem with what the user asked for or gave us; its message is shown as one line."""


def run(main, argv=None):
    """Call main(argv); turn a UserError into `error: ...` on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are the project's one-line errors (`error: ...`, exit status 2), not a
    usage block: `run` prints them, and tests calling main() directly see a UserError."""

    def error(self, message):
        raise UserError(message)


def number(kind, low=None, high=None, *, above=None, below=None):
    """An argparse type: an int, or a finite float, within the bounds given (low/high inclusive,
    above/below exclusive). Every numeric flag goes through one, so zero, negative, huge, nan and inf
    are refused before any work, with a message that states what would do."""
    bounds = [f"{sign} {bound:,}" for sign, bound in ((">=", low), ("<=", high), (">", above), ("<", below))
              if bound is not None]
    wanted = f"{'an integer' if kind is int else 'a number'} {' and '.join(bounds)}".strip()

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        inside = ((low is None or value >= low) and (high is None or value <= high)
                  and (above is None or value > above) and (below is None or value < below))
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    convert.kind, convert.bounds = kind, {"low": low, "high": high, "above": above, "below": below}  # for tests
    return convert


SEED = number(int, 0, 2**32 - 1)
# Below 0.001, logits / temperature overflows to inf and the probabilities to NaN (or, in float32, the
# temperature itself rounds to zero): what is left is argmax, which 0.001 already gives.
TEMPERATURE = number(float, 0.001)


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

    from .data import cache_dir

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
