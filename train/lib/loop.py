"""The loop around the compiled chunk: evaluation, checkpoints, Ctrl-C and SIGTERM, a NaN loss."""

import signal
import threading
import time
from functools import partial
from typing import Any, NamedTuple

import jax
import numpy as np

from .. import STOP_SIGNALS  # each stops a run at the end of its dispatch, saved
from . import checkpoint
from .batches import batch_loss
from .devices import to_host
from .errors import UserError
from .run import batch_indices, step_ids
from .step import TrainState, make_train_chunk



@partial(jax.jit, static_argnums=(3, 4))
def _eval_loss(params, rows, n, model, compute_dtype):
    return batch_loss(params, rows, n, model, compute_dtype)


def evaluate(run, params):
    """microgpt's loss over every held-out document, in one jitted call."""
    return float(to_host(_eval_loss(params, *run.val_data, run.model, run.cfg.compute_dtype)))


class Chunk(NamedTuple):
    """What one dispatch did, for `train`'s `on_chunk`."""

    step: int  # the step reached
    rows: list  # its metrics rows: {"step", "loss"} per step, {"step", "val_loss"} per evaluation
    tokens: int  # real tokens trained on
    seconds: float
    compiled: bool  # the dispatch traced and compiled first, so `seconds` counts that too


class Trained(NamedTuple):
    state: TrainState
    history: list  # every metrics row so far, as checkpoints keep them
    stopped: Any  # None when the run reached `until`; else what stopped it: a signal, or on_chunk's answer


def train(run, state, history=(), until=None, out=None, save_every=0, on_chunk=None, chunk=None):
    """Train from `state` to step `until` (default: the end of the schedule), `run.cfg.chunk` steps a
    dispatch, and return `Trained`.

    After each dispatch its metrics rows join the history and a `Chunk` goes to `on_chunk`, which may
    answer a reason to stop (anything true). With `out`, a checkpoint is saved there at the end, every
    `save_every` steps, and when the run stops early: on Ctrl-C, SIGTERM or SIGHUP it finishes the
    dispatch under way, saves and returns. A non-finite loss is a UserError; the last checkpoint on disk
    is kept. `chunk`: the compiled chunk to dispatch, by default `make_train_chunk(run)`.
    """
    history, cfg = list(history), run.cfg
    step = int(to_host(state.step))
    until = run.total_steps if until is None else min(until, run.total_steps)
    chunk = chunk or make_train_chunk(run)
    evaluating = bool(run.val_docs) and cfg.eval_every > 0
    pending = [{"step": 0, "val_loss": evaluate(run, state.params)}] if evaluating and step == 0 else []
    saved_step = step if out and checkpoint.exists(out) else None
    stopped = []
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        old_handlers = {sig: signal.signal(sig, lambda signum, _: stopped.append(signal.Signals(signum)))
                        for sig in STOP_SIGNALS}

    def save():
        nonlocal saved_step
        checkpoint.save_run(out, run, state, history)
        saved_step = step

    try:
        while step < until and not stopped:
            boundaries = [until, step + cfg.chunk]
            for every in (cfg.eval_every if evaluating else 0, save_every if out else 0):
                if every:
                    boundaries.append((step // every + 1) * every)
            count = min(boundaries) - step
            idx = batch_indices(run, state.key, step, count)  # a shorter last chunk compiles once more
            compiled_before = chunk._cache_size()  # jax's count of compiled versions: did this call compile?
            start = time.perf_counter()
            state, losses = chunk(state, *run.data, step_ids(run, idx))
            losses = np.asarray(to_host(losses))
            seconds = time.perf_counter() - start
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                kept = f"the checkpoint in {out} (step {saved_step}) is kept" if saved_step else "nothing was saved"
                raise UserError(f"loss is {losses[bad[0]]} at step {step + bad[0] + 1}: training stopped; {kept}")
            rows, pending = pending + [{"step": step + i + 1, "loss": float(x)} for i, x in enumerate(losses)], []
            step += count
            if evaluating and (step % cfg.eval_every == 0 or step == run.total_steps):
                rows.append({"step": step, "val_loss": evaluate(run, state.params)})
            history.extend(rows)
            if out and (step == until or (save_every and step % save_every == 0)):
                save()
            if on_chunk:
                answer = on_chunk(Chunk(step, rows, int(run.lengths[idx].sum()), seconds,
                                        chunk._cache_size() > compiled_before))
                if answer:
                    stopped.append(answer)
        if stopped and out and saved_step != step:
            save()
        return Trained(state, history, stopped[0] if stopped else None)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
