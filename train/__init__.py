"""Training, sampling and checking microgpt's GPT, as commands over an importable library.

- `train/*.py` are the commands, `python -m train.NAME`: gpt, sample, check, mlp, attention. Each
  parses its flags into the library's config and calls the library; `train/cli.py` is what they
  share (flags from the config, one-line errors, checked outputs, the `--out` lock).
- `train/lib/` is the library: importable without side effects, and it never imports a command or
  the CLI module.
- `train/dataset/` is the names.txt that ships with the package.
"""

import os
import signal
import sys

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a scheduler's stop, a closed terminal


def exit_on_signal():
    """A stop signal ends the process at once: one line on stderr, exit status 128 + the signal.

    What the commands do outside training (which saves first: train/lib/loop.py). Raising
    KeyboardInterrupt instead would print a traceback from wherever Python was, and raised inside
    jaxlib's start-up it can leave the process broken or crash it."""

    def stop(signum, frame):
        try:
            sys.stdout.flush()
        except Exception:  # a write under way, or a reader gone: what was printed is all there is
            pass
        os.write(2, f"stopped by {signal.Signals(signum).name}\n".encode())
        os._exit(128 + signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


if sys.argv[:1] == ["-m"]:  # `python -m train.NAME` is starting (Python sets argv[0] so while it finds NAME)
    exit_on_signal()
