"""The training loop around the jitted chunk: evaluation, checkpoints, Ctrl-C, NaN, resume."""

import dataclasses
import signal
import threading
import time

import jax
import numpy as np

from . import checkpoint
from .batches import batch_loss
from .cli import UserError
from .devices import put, to_host
from .trainer import RESUME_MAY_CHANGE, TrainConfig, batch_indices, make_train_chunk, step_ids


def evaluate(run):
    """microgpt's loss over every held-out document, in one jitted call."""
    if run._eval is None:
        run._eval = jax.jit(lambda p, rows, n: batch_loss(p, rows, n, run.model, run.cfg.compute_dtype))
    return float(to_host(run._eval(run.params, *run.val_data)))


def checkpoint_meta(run):
    return {"step": run.step, "total_steps": run.total_steps, "train": dataclasses.asdict(run.cfg),
            "model": dataclasses.asdict(run.model), "vocab": run.tokenizer.chars, "data": run.data_info,
            "python_rng": run.rng.getstate() if run.rng else None,
            "jax_key": np.asarray(run.key).tolist()}


def save(run, out):
    if jax.process_index() == 0:
        checkpoint.save_checkpoint(out, to_host(run.params), to_host(run.opt_state), checkpoint_meta(run),
                                   run.history)
    run.saved_step = run.step


def resumed_config(meta, overrides):
    """The checkpoint's TrainConfig, with `overrides` (flags given now) that may change on resume."""
    try:
        saved = TrainConfig(**meta["train"])
    except (KeyError, TypeError) as e:
        raise UserError(f"damaged checkpoint: its training settings do not read ({e})") from None
    for name, value in overrides.items():
        if name not in RESUME_MAY_CHANGE and value != getattr(saved, name):
            raise UserError(f"checkpoint does not match: it was trained with {name}={getattr(saved, name)!r}, "
                            f"not {value!r}")
    return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if k in RESUME_MAY_CHANGE})


def restore_run(run, tensors, meta):
    """Load parameters, optimizer state, step, RNG state and the metrics so far from a checkpoint into a
    prepared run, after checking that it was trained on the same documents."""
    saved = meta.get("data")
    if not saved:
        raise UserError("the checkpoint records no fingerprint of its data (it was written before checkpoints "
                        "kept one), so resuming it cannot be checked against this data; start a new run")
    if saved.get("sha256") != run.data_info["sha256"]:
        raise UserError(f"checkpoint was trained on other data ({_describe(saved)}), not on this run's "
                        f"({_describe(run.data_info)}); resuming would change the document order and the split")
    run.params = put(checkpoint.restore(tensors, "params", run.params), run.replicated)
    run.opt_state = put(checkpoint.restore(tensors, "opt", run.opt_state), run.replicated)
    run.step = run.saved_step = int(meta["step"])
    if run.step > run.total_steps:
        raise UserError(f"the checkpoint is at step {run.step}, past the {run.total_steps} steps asked for")
    if run.rng is not None and meta.get("python_rng"):
        version, internal, gauss = meta["python_rng"]
        run.rng.setstate((version, tuple(internal), gauss))
    run.history = checkpoint.history_rows(tensors)


def _describe(data):
    return f"{data.get('documents', '?')} documents from {data.get('path', '?')}, sha256 {data['sha256'][:12]}…"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what schedulers send before they kill


def train(run, until=None, out=None, save_every=0, on_chunk=None):
    """Train from run.step to `until` (default: the end of the schedule), `run.cfg.chunk` steps a dispatch.

    After each dispatch the new metrics rows ({"step", "loss"} per step and {"step", "val_loss"} at
    evaluations) join `run.history` (which checkpoints keep) and go to `on_chunk(run, rows,
    tokens_per_second)`. Returns "done", or the signal that stopped the run: on Ctrl-C (SIGINT) or
    SIGTERM it finishes the current dispatch, saves to `out` and returns. A non-finite loss stops
    training with a UserError; the last checkpoint on disk is kept.
    """
    until = run.total_steps if until is None else min(until, run.total_steps)
    if run._train_chunk is None:
        run._train_chunk = make_train_chunk(run)
    k, cfg = run.cfg.chunk, run.cfg
    host_n = run.lengths
    evaluating = bool(run.val_docs) and cfg.eval_every > 0
    pending = [{"step": 0, "val_loss": evaluate(run)}] if evaluating and run.step == 0 else []
    stopped = []
    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        old_handlers = {sig: signal.signal(sig, lambda signum, _: stopped.append(signal.Signals(signum)))
                        for sig in STOP_SIGNALS}
    try:
        while run.step < until and not stopped:
            boundaries = [until, run.step + k]
            for every in (cfg.eval_every if evaluating else 0, save_every if out else 0):
                if every:
                    boundaries.append((run.step // every + 1) * every)
            count = min(boundaries) - run.step
            idx = batch_indices(run, run.step, count)  # a shorter last chunk compiles once more
            start = time.perf_counter()
            run.params, run.opt_state, losses = run._train_chunk(run.params, run.opt_state, *run.data,
                                                                 step_ids(run, idx))
            losses = np.asarray(to_host(losses))
            seconds = time.perf_counter() - start
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                kept = (f"the checkpoint in {out} (step {run.saved_step}) is kept" if out and run.saved_step
                        else "nothing was saved")
                raise UserError(f"loss is {losses[bad[0]]} at step {run.step + bad[0] + 1}: training stopped; {kept}")
            rows, pending = pending + [{"step": run.step + i + 1, "loss": float(x)} for i, x in enumerate(losses)], []
            run.step += count
            if evaluating and (run.step % cfg.eval_every == 0 or run.step == run.total_steps):
                rows.append({"step": run.step, "val_loss": evaluate(run)})
            run.history.extend(rows)
            if out and (run.step == until or (save_every and run.step % save_every == 0)):
                save(run, out)
            if on_chunk:
                on_chunk(run, rows, int(host_n[idx].sum()) / max(seconds, 1e-9))
        if stopped:
            if out and run.saved_step != run.step:
                save(run, out)
            return stopped[0]
        return "done"
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
