"""The training state and the one step that changes it, and the compiled chunk of steps around that step.

`train_step` is pure: a `TrainState` and a batch in, the next `TrainState` and the loss out: the loss,
its gradient and the optax update in one jit region. `make_train_chunk` wraps it for speed without
changing it: `lax.scan` runs `chunk` steps per dispatch, one-document steps are cut to the shortest
length bucket that holds the document (the step's two halves, the gradient and `apply_gradients`,
with a switch between them), the parameters travel as one flat vector (so Adam is a few large
element-wise ops rather than a set per matrix; on a mesh that splits the parameters,
train/lib/sharding.py, each keeps its own Adam state), and the state's buffers are donated.
"""

from functools import lru_cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding

from . import flops, sharding
from .batches import first_positions, length_buckets, one_per_row, packed_loss, real_length, text_batch, unpack
from .compiled import cached_jit
from .devices import batch_sharding
from .keys import subkey
from .text import windows

# XLA's CPU defaults split every op over the threads, which for this project's small matrices costs
# more than it saves, and schedule the step's kernels for concurrency, where a step this small runs
# quicker in the order that keeps the fewest buffers live (XLA's memory-optimized scheduler, 1): both
# cost no compile time and change no result, so every CPU step below THREADED_STEP_FLOPS uses them.
# A step of more than that has matrices large enough that the threads pay: the options won at 1.3
# GFLOP a step (n_embd 64, 4 layers, batch 64) and lost at 4.0 (the Shakespeare CPU preset) and 10.
# Runs that train on at least LONG_RUN_DOCS documents also hand float64 products to XLA's own
# emitter rather than YNNPACK (quicker in float64, not in float32) and cut one-document steps to
# length buckets; both trade compile time for step time, so shorter runs, the 1,000-document microgpt
# job among them, finish sooner without (bench/README.md has the measurements).
CPU_COMPILER_OPTIONS = {"xla_cpu_multi_thread_eigen": False, "xla_cpu_scheduler_type": 1}
CPU_FLOAT64_OPTIONS = {**CPU_COMPILER_OPTIONS, "xla_cpu_experimental_ynn_fusion_type": ""}
LONG_RUN_DOCS = 20_000
THREADED_STEP_FLOPS = 2e9


class TrainState(NamedTuple):
    """All that training changes, as one pytree: what a checkpoint saves and a resumed run restores."""

    params: dict  # master parameters, {name: array}
    opt_state: Any  # optax's state; a run keeps it for the parameters raveled into one vector
    step: jax.Array  # optimizer steps taken, int32
    key: jax.Array  # the run's root key: the batch order and the samples are drawn from its subkeys


def train_step(state, batch, loss_fn, optimizer, accum=1):
    """One optimizer step: loss_fn(params, batch) and its gradient, optax's update, the step counted.
    Returns (the next state, the loss). Pure, so it jits on its own and runs inside `lax.scan`.
    `accum` > 1: `batch` holds that many batches stacked on a leading axis, and the step takes the mean
    of their losses and gradients (`accumulate`)."""
    grad_fn = jax.value_and_grad(loss_fn)
    loss, grads = accumulate(grad_fn, state.params, batch) if accum > 1 else grad_fn(state.params, batch)
    return apply_gradients(state, loss, grads, optimizer)


def accumulate(grad_fn, params, batches):
    """Gradient accumulation: the mean of grad_fn(params, b) = (loss, grads) over the batches stacked on
    `batches`' leading axis, one batch at a time (`lax.scan`), so that memory holds one batch's
    activations. Equal to one step on all of them at once when each batch's loss is a mean of the same
    weight, as it is here."""
    def add(total, batch):
        return jax.tree.map(jnp.add, total, grad_fn(params, batch)), None

    n = jax.tree.leaves(batches)[0].shape[0]
    first = jax.tree.map(lambda x: x[0], batches)
    total, _ = jax.lax.scan(add, grad_fn(params, first), jax.tree.map(lambda x: x[1:], batches))
    return jax.tree.map(lambda x: x / n, total)


def apply_gradients(state, loss, grads, optimizer):
    """The second half of `train_step`: optax's update from the gradient, the step counted."""
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                          step=state.step + 1), loss


@lru_cache(maxsize=8)  # one compiled chunk per run (and mode): training the same run again does not retrace
def make_train_chunk(run, long_run=None):
    """jit(state, *run.data, ids) -> (state, losses (K,)): K = len(ids) steps of `train_step` in one scan.

    ids: with batch_size 1, (K, 1) document indices, one document a step; else (K, R, 2) pairs, each
    step on the packed rows its pairs name (see `batches.pack` and `run.step_ids`); with accum > 1 an
    axis for the accumulated batches after K. Text (`run.is_text`): the K step numbers, and each step
    draws its batch_size windows from the state's key and step, so a resumed run trains on the same
    windows. `long_run` (by default: at least LONG_RUN_DOCS documents) compiles for speed over compile
    time: CPU_FLOAT64_OPTIONS for float64 on the CPU, and one-document steps cut to `length_buckets`.
    Every CPU step below THREADED_STEP_FLOPS takes CPU_COMPILER_OPTIONS.
    """
    model, optimizer, dtype, b = run.model, run.optimizer, run.cfg.compute_dtype, run.cfg.batch_size
    accum, rate, T = run.cfg.accum, run.cfg.dropout, model.block_size
    loss_dtype = jnp.promote_types(run.cfg.param_dtype, jnp.float32)
    row_sharding = batch_sharding(run.mesh, lead=1 if accum > 1 else 0)
    if long_run is None:
        long_run = run.total_steps * b * accum >= LONG_RUN_DOCS
    # one document a step (packed rows are nearly full): as many positions as the shortest bucket that holds it
    buckets = length_buckets(T) if long_run and b == 1 and accum == 1 and not run.is_text else (T,)

    if run.shardings is None:
        gather = None
    else:  # ZeRO-3: each matrix all-gathered over fsdp where the loss uses it (its model split kept)
        gather = {k: NamedSharding(run.mesh, sharding.gathered(s.spec)) for k, s in run.shardings.items()}

    def chunk(state, *data_and_ids):
        *data, ids = data_and_ids
        if gather is None:
            flat, unravel = ravel_pytree(state.params)
        else:
            # constrained to its own layout first, then gathered: the gradient, flowing back through
            # both, is reduce-scattered to the parameter's layout, where Adam updates it shard by shard
            flat, unravel = state.params, lambda p: jax.lax.with_sharding_constraint(
                jax.lax.with_sharding_constraint(p, run.shardings), gather)

        def cut_loss(length, flat, batch_key):
            batch, key = batch_key
            return packed_loss(unravel(flat), first_positions(batch, length), model, dtype, rate, key)

        # buckets: the gradient's computation is switched by length, the update is the same for all
        # (a switch over whole steps, Adam inside each branch, measured slower: bench/README.md)
        by_length = [jax.value_and_grad(partial(cut_loss, t)) for t in buckets]

        def batch_of(state, ids):
            """The step's batch (accum of them, stacked), and the dropout key of each (None: no dropout)."""
            shape = (accum, b) if accum > 1 else (b,)
            if run.is_text:
                (tokens,) = data
                starts = jax.random.randint(subkey(state.key, "batches", state.step), shape, 0, tokens.shape[0] - T)
                batch = text_batch(windows(tokens, starts, T), loss_dtype)
            else:
                rows, n = data
                one = (lambda i: unpack(rows, n, i, b, loss_dtype)) if b > 1 else (
                    lambda i: one_per_row(rows, n, i, loss_dtype))
                batch = jax.vmap(one)(ids) if accum > 1 else one(ids)
            key = None
            if rate:
                key = subkey(state.key, "dropout", state.step)
                key = jax.vmap(partial(jax.random.fold_in, key))(jnp.arange(accum)) if accum > 1 else key
            return jax.lax.with_sharding_constraint(batch, row_sharding), key

        def body(state, ids):
            batch = batch_of(state, ids)
            if len(buckets) == 1:
                state, loss = train_step(state, batch, partial(cut_loss, buckets[0]), optimizer, accum)
            else:
                which = jnp.searchsorted(jnp.array(buckets), real_length(batch[0]))
                state, loss = apply_gradients(state, *jax.lax.switch(which, by_length, state.params, batch),
                                              optimizer)
            return state, loss.astype(loss_dtype)

        state, losses = jax.lax.scan(body, state._replace(params=flat), ids)
        return state._replace(params=state.params if gather else unravel(state.params)), losses

    options = None
    step_flops = flops.flops_per_token(model) * b * accum * T
    if run.mesh.devices.flat[0].platform == "cpu" and step_flops < THREADED_STEP_FLOPS:
        options = CPU_FLOAT64_OPTIONS if long_run and dtype == jnp.float64 else CPU_COMPILER_OPTIONS
    return cached_jit(chunk, (run.cfg, run.model, run.total_steps, long_run), donate_argnums=0,
                      out_shardings=(run.state_shardings, run.replicated), compiler_options=options)
