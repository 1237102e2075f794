"""The loop around the compiled chunk: evaluation, checkpoints, Ctrl-C and SIGTERM, a NaN loss."""

import signal
import threading
import time
from functools import partial
from typing import Any, NamedTuple

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from models import gpt

from .. import STOP_SIGNALS  # each stops a run at the end of its dispatch, saved
from . import checkpoint, text
from .batches import batch_loss, in_compute_dtype
from .devices import to_host
from .errors import UserError
from .keys import subkey
from .run import chunk_inputs
from .step import TrainState, make_train_chunk
from .text import windows


BEST = "best"  # --keep-best: the checkpoint of the lowest val loss so far, in this folder inside --out
EVAL_WINDOWS = 64  # windows per evaluated batch of the whole split of a text: its memory, not its result


@partial(jax.jit, static_argnums=(3, 4))
def _eval_loss(params, rows, n, model, compute_dtype):
    return batch_loss(params, rows, n, model, compute_dtype)


@partial(jax.jit, static_argnums=(4, 5))
def _docs_loss(params, rows, n, idx, model, compute_dtype):
    """The mean of microgpt's loss over the batches of documents idx (G, B), one batch at a time."""
    return jnp.mean(jax.lax.map(lambda i: batch_loss(params, rows[i], n[i], model, compute_dtype), idx))


@partial(jax.jit, static_argnums=(3, 4))
def _windows_loss(params, tokens, starts, model, compute_dtype):
    """The mean loss of each window of a text with these starts (G, B), one group of B at a time: (G, B)."""
    def group(s):
        rows = windows(tokens, s, model.block_size)
        nll = gpt.token_nll(in_compute_dtype(params, compute_dtype), rows[:, :-1], rows[:, 1:], model)
        return jnp.mean(nll, axis=-1)

    return jax.lax.map(group, starts)


def evaluate(run, params):
    """microgpt's loss over every held-out document, in one jitted call; for a text, the mean loss over
    every held-out token, each predicted once (`text.whole_split_starts`)."""
    dtype = run.cfg.compute_dtype
    if not run.is_text:
        return float(to_host(_eval_loss(params, *run.val_data, run.model, dtype)))
    starts = text.whole_split_starts(run.val_data[0].shape[0], run.model.block_size)
    groups = -(-len(starts) // EVAL_WINDOWS)
    padded = np.resize(starts, groups * EVAL_WINDOWS).reshape(groups, EVAL_WINDOWS)  # the repeats are dropped
    per_window = np.asarray(to_host(_windows_loss(params, run.val_data[0], padded, run.model, dtype)))
    return float(per_window.reshape(-1)[: len(starts)].mean())


def estimate(run, params, key, step):
    """nanoGPT's `estimate_loss`: {"val_loss", "train_loss"}, each the mean over eval_iters random
    batches of its split, drawn from the run's `key` and the `step`."""
    cfg, dtype, out = run.cfg, run.cfg.compute_dtype, {}
    for i, (name, data) in enumerate((("val_loss", run.val_data), ("train_loss", run.data))):
        k = subkey(key, "eval", step, i)
        if run.is_text:
            starts = jax.random.randint(k, (cfg.eval_iters, cfg.batch_size), 0, data[0].shape[0] - run.model.block_size)
            out[name] = float(jnp.mean(_windows_loss(params, data[0], starts, run.model, dtype)))
        else:
            idx = jax.random.randint(k, (cfg.eval_iters, cfg.batch_size), 0, data[1].shape[0])
            out[name] = float(to_host(_docs_loss(params, *data, idx, run.model, dtype)))
    return out


def evaluation(run, state, last=False):
    """An evaluation's metrics row, less its step: with eval_iters 0 {"val_loss"} of the whole held-out
    split (`evaluate`), else `estimate`'s, and at the `last` step also {"val_whole"}, the whole split's."""
    if not run.cfg.eval_iters:
        return {"val_loss": evaluate(run, state.params)}
    row = estimate(run, state.params, state.key, int(to_host(state.step)))
    return {**row, "val_whole": evaluate(run, state.params)} if last else row


class Chunk(NamedTuple):
    """What one dispatch did, for `train`'s `on_chunk`."""

    step: int  # the step reached
    rows: list  # its metrics rows: {"step", "loss"} per step, {"step", "val_loss"} per evaluation
    tokens: int  # real tokens trained on (text: every position of every window)
    seconds: float
    compiled: bool  # the dispatch made its program first (traced and compiled, or loaded), so `seconds` counts that too
    prepared: str  # how: "compiled", or "loaded" (train/lib/compiled.py); a plain jax.jit always compiles


class Trained(NamedTuple):
    state: TrainState
    history: list  # every metrics row so far, as checkpoints keep them
    stopped: Any  # None when the run reached `until`; else what stopped it: a signal, or on_chunk's answer


def train(run, state, history=(), until=None, out=None, save_every=0, on_chunk=None, chunk=None, keep_best=False):
    """Train from `state` to step `until` (default: the end of the schedule), `run.cfg.chunk` steps a
    dispatch, and return `Trained`.

    After each dispatch its metrics rows join the history and a `Chunk` goes to `on_chunk`, which may
    answer a reason to stop (anything true). With `out`, a checkpoint is saved there at the end, every
    `save_every` steps, and when the run stops early: on Ctrl-C, SIGTERM or SIGHUP it finishes the
    dispatch under way, saves and returns; `keep_best` also saves, in out/best, the state of each
    evaluation whose val loss is the lowest so far. A non-finite loss is a UserError; the last checkpoint
    on disk is kept. `chunk`: the compiled chunk to dispatch, by default `make_train_chunk(run)`.
    """
    history, cfg = list(history), run.cfg
    step = int(to_host(state.step))
    until = run.total_steps if until is None else min(until, run.total_steps)
    chunk = chunk or make_train_chunk(run)
    evaluating = bool(run.val_data) and cfg.eval_every > 0
    pending = [{"step": 0, **evaluation(run, state)}] if evaluating and step == 0 else []
    best = min((r["val_loss"] for r in history if "val_loss" in r), default=float("inf"))
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
            ids, tokens = chunk_inputs(run, state.key, step, count)  # a shorter last chunk compiles once more
            compiled_before = chunk._cache_size()  # jax's count of compiled versions: did this call compile?
            start = time.perf_counter()
            state, losses = chunk(state, *run.data, ids)
            losses = np.asarray(to_host(losses))
            seconds = time.perf_counter() - start
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                kept = f"the checkpoint in {out} (step {saved_step}) is kept" if saved_step else "nothing was saved"
                raise UserError(f"loss is {losses[bad[0]]} at step {step + bad[0] + 1}: training stopped; {kept}")
            rows, pending = pending + [{"step": step + i + 1, "loss": float(x)} for i, x in enumerate(losses)], []
            step += count
            if evaluating and (step % cfg.eval_every == 0 or step == run.total_steps):
                rows.append({"step": step, **evaluation(run, state, step == run.total_steps)})
            history.extend(rows)
            if keep_best and out and evaluating and rows[-1].get("val_loss", best) < best:
                best = rows[-1]["val_loss"]
                checkpoint.save_run(Path(out) / BEST, run, state, history)
            if out and (step == until or (save_every and step % save_every == 0)):
                save()
            if on_chunk:
                new = chunk._cache_size() > compiled_before
                answer = on_chunk(Chunk(step, rows, tokens, seconds, new, getattr(chunk, "prepared", "compiled")))
                if answer:
                    stopped.append(answer)
        if stopped and out and saved_step != step:
            save()
        return Trained(state, history, stopped[0] if stopped else None)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
