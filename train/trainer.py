"""The trainer: microgpt's algorithm as jitted, scanned optax steps, and the same loop batched,
sharded over devices, evaluated, checkpointed and resumable.

One jitted function runs `chunk` steps per dispatch with `lax.scan`; each step is loss, gradient and
optax update in one jit region. The documents live on the device; each step gathers its rows from the
document indices (or packed pairs of them) that the host computes, split along the batch axis over a
1-D device mesh.
"""

import dataclasses
import math
import os
import random
from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from models import gpt, gpt_scalar

from .batches import one_per_row, pack, packed_loss, rows_per_step, unpack
from .cli import UserError
from .data import Tokenizer, encode_docs, fingerprint
from .devices import batch_sharding, make_mesh, put, to_host

DTYPES = {"float64": jnp.float64, "float32": jnp.float32, "bfloat16": jnp.bfloat16}
RESUME_MAY_CHANGE = {"steps", "epochs", "eval_every", "chunk"}  # they change how long, not what
# XLA's CPU defaults split every op over the threads and hand matrix products to YNNPACK. For this
# project's small matrices both cost more than they save (`python -m bench`: the microgpt step 51 ->
# 36 µs, batch 256 of the default model 26 -> 11 µs a document, on 2 cores), but compiling without
# them takes about a second longer. So runs that train on at least LONG_RUN_DOCS documents opt out;
# shorter ones, the 1,000-document microgpt job among them, finish sooner with the defaults.
CPU_COMPILER_OPTIONS = {"xla_cpu_multi_thread_eigen": False, "xla_cpu_experimental_ynn_fusion_type": ""}
LONG_RUN_DOCS = 20_000
KEY_PURPOSES = ("shuffle", "init", "batches", "sample")  # rng "jax": one subkey of the seed's key each


def subkey(key, purpose, *more):
    """The key for one purpose (KEY_PURPOSES), further folded with e.g. an epoch number."""
    key = jax.random.fold_in(key, KEY_PURPOSES.index(purpose))
    for m in more:
        key = jax.random.fold_in(key, m)
    return key


@dataclass(frozen=True)
class TrainConfig:
    n_layer: int = 1
    n_embd: int = 16
    n_head: int = 4
    block_size: int = 16
    seed: int = 42
    steps: int = 1000  # optimizer steps; the learning rate decays linearly to zero over them
    epochs: float | None = None  # instead of steps: passes over the training documents
    batch_size: int = 1  # documents per step; microgpt takes one
    lr: float = 0.01
    beta1: float = 0.85
    beta2: float = 0.99
    eps: float = 1e-8
    rng: str = "python"  # "python": microgpt's `random` module, exactly; "jax": JAX keys
    dtype: str | None = None  # compute dtype; float64 with rng "python", float32 with rng "jax"
    val_fraction: float = 0.0  # documents held out for evaluation, from the end of the shuffled list
    eval_every: int = 100  # steps between evaluations, when there is a held-out split
    chunk: int = 100  # steps per jitted dispatch

    def __post_init__(self):
        if self.rng not in ("python", "jax"):
            raise UserError(f"rng must be 'python' or 'jax', got {self.rng!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("steps", "batch_size", "chunk"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.epochs is not None and not self.epochs > 0:
            raise UserError(f"epochs must be positive, got {self.epochs}")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not (self.lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps >= 0):
            raise UserError("need lr > 0, 0 <= beta1, beta2 < 1 and eps >= 0")
        if self.eval_every < 0:
            raise UserError(f"eval_every must be >= 0, got {self.eval_every}")

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype or ("float64" if self.rng == "python" else "float32")]

    @property
    def param_dtype(self):
        """Master parameters and optimizer state: float32 under bfloat16 compute."""
        return jnp.float64 if self.compute_dtype == jnp.float64 else jnp.float32


@dataclass
class Run:
    """Everything a training run holds: its data, model, optimizer state, and where it stands."""

    cfg: TrainConfig
    model: gpt.GPTConfig
    tokenizer: Tokenizer
    train_docs: tuple
    val_docs: tuple
    truncated: int
    total_steps: int
    optimizer: optax.GradientTransformation
    params: dict
    opt_state: tuple
    step: int
    saved_step: int
    rng: random.Random | None  # rng "python": microgpt's generator, next used for sampling
    key: jax.Array  # rng "jax": the run's root key
    mesh: Mesh
    data: tuple = ()  # (rows, n) of the training documents, on the devices
    val_data: tuple = ()
    _train_chunk: object = None
    _eval: object = None
    _perms: dict = dataclasses.field(default_factory=dict)
    data_info: dict = dataclasses.field(default_factory=dict)  # which documents: a checkpoint checks them
    history: list = dataclasses.field(default_factory=list)  # every metrics row so far, as checkpoints keep it

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())

    @cached_property
    def lengths(self):
        """Real positions of every training document, on the host."""
        return to_host(self.data[1])

    @property
    def rows(self):
        return rows_per_step(self.cfg.batch_size, self.mesh.size)

    @property
    def steps_per_epoch(self):
        return len(self.train_docs) // self.cfg.batch_size


def prepare(cfg, docs, num_devices=None, source=""):
    """Shuffle, tokenize, split and initialize as microgpt does (rng "python") or with JAX keys.
    `source` names where the documents came from, for messages."""
    data_info = {"sha256": fingerprint(docs), "documents": len(docs), "path": str(source)}
    rng, key, docs = None, jax.random.PRNGKey(cfg.seed), list(docs)
    if cfg.rng == "python":
        rng = random.Random(cfg.seed)
        rng.shuffle(docs)
    else:
        docs = [docs[i] for i in np.asarray(jax.random.permutation(subkey(key, "shuffle"), len(docs)))]
    tokenizer = Tokenizer.from_docs(docs)
    try:
        model = gpt.GPTConfig(tokenizer.vocab_size, cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.block_size)
    except ValueError as e:
        raise UserError(str(e)) from None
    check_fits(model, cfg)
    if rng is not None:  # microgpt draws every weight from the same generator, in state_dict order
        params = {k: np.asarray(v, cfg.param_dtype) for k, v in gpt_scalar.init(rng, model).items()}
    else:
        params = jax.device_get(gpt.init(subkey(key, "init"), model, cfg.param_dtype))
    n_val = math.ceil(len(docs) * cfg.val_fraction)
    train_docs, val_docs = tuple(docs[: len(docs) - n_val]), tuple(docs[len(docs) - n_val :])
    if len(train_docs) < cfg.batch_size:
        raise UserError(f"batch size {cfg.batch_size} is larger than the {len(train_docs)} training documents")
    mesh = make_mesh(num_devices)
    if cfg.batch_size % mesh.size:
        raise UserError(f"batch size {cfg.batch_size} does not divide over {mesh.size} devices; "
                        f"use a multiple of {mesh.size} or --devices")
    total = math.ceil(cfg.epochs * (len(train_docs) // cfg.batch_size)) if cfg.epochs else cfg.steps
    schedule = optax.linear_schedule(cfg.lr, 0.0, total)
    optimizer = optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps)
    rows, n, truncated = encode_docs(train_docs, tokenizer, cfg.block_size)
    run = Run(cfg, model, tokenizer, train_docs, val_docs, truncated, total, optimizer, None, None, 0, 0, rng, key, mesh,
              data_info=data_info)
    run.data = put((rows, n), run.replicated)
    if val_docs:
        run.val_data = put(encode_docs(val_docs, tokenizer, cfg.block_size)[:2], run.replicated)
    run.params = put(params, run.replicated)
    run.opt_state = jax.jit(lambda p: optimizer.init(ravel_pytree(p)[0]), out_shardings=run.replicated)(run.params)
    return run


def check_fits(model, cfg):
    """Refuse, before allocating anything, a model whose parameters, gradients and Adam moments (four
    copies) would not fit in the first device's memory (host memory on the CPU)."""
    need = 4 * gpt.num_params(model) * np.dtype(cfg.param_dtype).itemsize
    stats = jax.local_devices()[0].memory_stats() or {}
    have = stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise UserError(f"the model has {gpt.num_params(model):,} parameters: with gradients and Adam state that "
                        f"is {need / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB this device has")


def make_train_chunk(run, compiler_options=None):
    """jit(params, opt_state, rows, n, ids) -> (params, opt_state, losses (K,)): K steps in one scan.
    `compiler_options` for XLA, by default CPU_COMPILER_OPTIONS for long runs on the CPU.

    ids: with batch_size 1, (K, 1) document indices, one document a step; else (K, R, 2) pairs, each
    step on the packed rows its pairs name (see `pack` and `step_ids`).

    Parameters and optimizer state are donated. Inside, the parameters travel as one flat vector,
    so Adam is a few large element-wise ops rather than a set per matrix.
    """
    model, optimizer, dtype, b = run.model, run.optimizer, run.cfg.compute_dtype, run.cfg.batch_size
    loss_dtype = jnp.promote_types(run.cfg.param_dtype, jnp.float32)
    row_sharding = batch_sharding(run.mesh)

    def chunk(params, opt_state, rows, n, ids):
        flat, unravel = ravel_pytree(params)

        def step(carry, ids):
            flat, opt_state = carry
            batch = unpack(rows, n, ids, b, loss_dtype) if b > 1 else one_per_row(rows, n, ids, loss_dtype)
            batch = jax.lax.with_sharding_constraint(batch, row_sharding)
            loss, grads = jax.value_and_grad(lambda f: packed_loss(unravel(f), batch, model, dtype))(flat)
            updates, opt_state = optimizer.update(grads, opt_state, flat)
            return (optax.apply_updates(flat, updates), opt_state), loss.astype(loss_dtype)

        (flat, opt_state), losses = jax.lax.scan(step, (flat, opt_state), ids)
        return unravel(flat), opt_state, losses

    if compiler_options is None and run.mesh.devices.flat[0].platform == "cpu":
        long_run = run.total_steps * run.cfg.batch_size >= LONG_RUN_DOCS
        compiler_options = CPU_COMPILER_OPTIONS if long_run else {}
    return jax.jit(chunk, donate_argnums=(0, 1), out_shardings=(run.replicated,) * 3,
                   compiler_options=compiler_options or None)


def step_ids(run, idx):
    """What the train chunk takes for documents idx (K, B): the indices themselves at batch size 1,
    else their packing into pairs, on the devices and split along the batch."""
    if run.cfg.batch_size > 1:
        idx = pack(run.lengths, idx, run.cfg.block_size, run.rows, run.mesh.size)
    return put(idx.astype(np.int32), batch_sharding(run.mesh, per_step=True))


def batch_indices(run, start, count):
    """Document indices (count, B) for steps start .. start+count-1.

    rng "python": microgpt's order, docs[(step * B + j) % N]. rng "jax": a fresh permutation of the
    training documents every epoch, from the run's key.
    """
    n_docs, b = len(run.train_docs), run.cfg.batch_size
    steps = np.arange(start, start + count)
    if run.cfg.rng == "python":
        return (steps[:, None] * b + np.arange(b)) % n_docs
    spe = run.steps_per_epoch
    out = np.empty((count, b), np.int64)
    for i, s in enumerate(steps):
        epoch, k = divmod(int(s), spe)
        if epoch not in run._perms:
            run._perms = {epoch: np.asarray(jax.random.permutation(subkey(run.key, "batches", epoch), n_docs))}
        out[i] = run._perms[epoch][k * b : (k + 1) * b]
    return out
