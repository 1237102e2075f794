"""Training progress: a live bar on a terminal (tqdm), plain lines at a steady interval in a log file."""

import sys
import time

from tqdm import tqdm

LOG_EVERY_SECONDS = 10.0


def status_line(step, total, loss, val=None, val_step=None, epoch=None, tokens_per_second=None,
                compile_seconds=None, mfu=None, seconds_left=None, prepared="compiled"):
    """`step 1000 / 1000 | loss 2.6497 | epoch 0.03 | 67,067 tok/s`, the run's one-line summary.

    `val` is the latest held-out loss, labelled with its step `val_step` when that is not this step; a
    dispatch that compiled its program first (or `prepared="loaded"` it from the cache of compiled
    programs) shows its time (`compile_seconds`) instead of a rate it would spoil."""
    text = f"step {step:4d} / {total:4d} | loss {loss:.4f}"
    if val is not None:
        text += f" | val {val:.4f}" + (f" (step {val_step})" if val_step is not None and val_step != step else "")
    if epoch is not None:
        text += f" | epoch {epoch:.2f}"
    if tokens_per_second is not None:
        text += f" | {tokens_per_second:,.0f} tok/s" + (f" | MFU {mfu:.2%}" if mfu is not None else "")
    elif compile_seconds is not None:
        text += f" | {prepared} and ran in {compile_seconds:.2f} s"
    if seconds_left is not None:
        text += f" | {seconds_left:.0f} s left"
    return text


class Progress:
    """On a terminal, a tqdm bar with steps, loss, tokens/s and time left, redrawn in place. Anywhere
    else (a log file, a pipe), a plain status line after the first dispatch and then every `every`
    seconds, so logs stay readable.
    Either way `close` prints the final status line."""

    def __init__(self, total, start, stream=None, every=LOG_EVERY_SECONDS):
        self.stream = stream or sys.stdout
        self.total, self.start, self.every = total, start, every
        self.printed = -float("inf")  # the first dispatch is reported at once
        self.first = None  # (time, step) after the first dispatch, which includes compiling: rates start there
        self.bar, self.shown = None, None  # self.shown: the step of the last plain line printed
        if self.stream.isatty():
            self.bar = tqdm(total=total, initial=start, file=self.stream, unit="step", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        self.last = None

    def update(self, step, loss, val=None, val_step=None, epoch=None, tokens_per_second=None, compile_seconds=None,
               mfu=None, prepared="compiled"):
        self.last = dict(step=step, loss=loss, val=val, val_step=val_step, epoch=epoch, prepared=prepared,
                         tokens_per_second=tokens_per_second, compile_seconds=compile_seconds, mfu=mfu)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            postfix = status_line(total=self.total, **self.last).split(" | ", 1)[1]
            self.bar.set_postfix_str(postfix, refresh=True)
            return
        now = time.monotonic()
        if now - self.printed >= self.every and step < self.total:
            if self.first is None:
                self.first = (now, step)
            seconds, steps = now - self.first[0], step - self.first[1]
            left = (self.total - step) * seconds / steps if steps else None
            print(status_line(total=self.total, **self.last, seconds_left=left), file=self.stream, flush=True)
            self.printed, self.shown = now, step

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.last is not None and self.last["step"] != self.shown:
            print(status_line(total=self.total, **self.last), file=self.stream, flush=True)
