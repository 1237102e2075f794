"""A training run: its fixed facts (`Run`: config, model, documents on the devices, optimizer, mesh)
built by `prepare` beside its starting `TrainState`, and which documents each step trains on.

microgpt's way (rng "python") shuffles and draws the weights with Python's `random` exactly as
microgpt.py does; rng "jax" draws everything from subkeys of one key. Either way the documents live on
the devices, and each step gathers its rows from document indices (or packed pairs of them) that the
host computes, split along the batch axis over a 1-D device mesh.
"""

import math
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from models import gpt, gpt_scalar

from . import sharding, text
from .batches import pack, rows_per_step
from .compiled import cached_jit
from .config import TrainConfig
from .data import Tokenizer, encode_docs, fingerprint, microgpt_order
from .devices import batch_sharding, make_mesh, put, to_host
from .errors import UserError
from .keys import subkey
from .optim import make_optimizer
from .step import TrainState

@dataclass(frozen=True, eq=False)  # compared and hashed by identity: compiled functions are cached per run
class Run:
    """What stays fixed while a run trains. What changes is its `TrainState`."""

    cfg: TrainConfig
    model: gpt.GPTConfig
    tokenizer: Tokenizer
    train_docs: tuple
    val_docs: tuple
    truncated: int  # documents longer than the context
    total_steps: int  # the schedule's length
    optimizer: optax.GradientTransformation
    mesh: Mesh
    data: tuple  # (rows, n) of the training documents, on the devices
    val_data: tuple  # the same for the held-out documents, or ()
    data_info: dict  # which documents: a checkpoint checks them on resume
    python_rng: tuple | None  # rng "python": microgpt's generator after the weights (getstate()), for sampling
    # on a mesh that splits parameters (fsdp or model): {name: NamedSharding} of each parameter, and the
    # parameters left whole along some axis with why; None: every device holds the whole model, and Adam
    # runs over the parameters raveled into one vector
    shardings: dict | None = None
    whole: dict | None = None

    @property
    def is_text(self):
        """--format text: `data` and `val_data` are one stream of tokens each, (tokens,), not documents."""
        return self.cfg.format == "text"

    @property
    def train_tokens(self):
        """Tokens in the training split (text), or real positions of the training documents (lines)."""
        return int(self.data[0].shape[0]) if self.is_text else int(self.lengths.sum())

    @property
    def docs_per_step(self):
        """Documents (text: windows) a step trains on: the batch, times the batches it accumulates."""
        return self.cfg.batch_size * self.cfg.accum

    def epochs_done(self, step):
        """Passes over the training data after `step` steps (text: in tokens, as nanoGPT counts them)."""
        if self.is_text:
            return step * self.docs_per_step * self.model.block_size / max(self.train_tokens, 1)
        return step * self.docs_per_step / len(self.train_docs)

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())

    @cached_property
    def lengths(self):
        """Real positions of every training document, on the host."""
        return to_host(self.data[1])

    @property
    def rows(self):
        return rows_per_step(self.cfg.batch_size, self.batch_split)

    @property
    def batch_split(self):
        """How many ways each step's rows are split: the devices of the data (and fsdp) axes."""
        return sharding.batch_size_divisor(self.mesh)

    @property
    def state_shardings(self):
        """TrainState's layout on the mesh, as the compiled chunk returns it."""
        if self.shardings is None:
            return TrainState(self.replicated, self.replicated, self.replicated, self.replicated)
        opt = sharding.opt_shardings(self.optimizer, self.shardings, self.mesh)
        return TrainState(self.shardings, opt, self.replicated, self.replicated)

    @property
    def steps_per_epoch(self):
        return steps_per_epoch(self.cfg, self.train_tokens if self.is_text else len(self.train_docs))


def steps_per_epoch(cfg, n):
    """Steps in one pass over n training documents (--format text: n tokens, in windows of block_size),
    at least one."""
    per_step = cfg.batch_size * cfg.accum * (cfg.block_size if cfg.format == "text" else 1)
    return max(1, n // per_step)


def prepare(cfg, data, num_devices=None, source="", mesh=None):
    """(Run, TrainState at step 0): shuffle, tokenize, split and initialize as microgpt does (rng
    "python") or with JAX keys. `data`: the documents, a list of lines; with --format text, the text
    itself, a str (train/lib/text.py). `source` names where it came from, for messages. `mesh`
    ("data=2,fsdp=2,model=2", see train/lib/sharding.py) lays the run out on that mesh instead of
    replicating it over the first `num_devices` devices."""
    sizes = sharding.parse_mesh(mesh) if isinstance(mesh, str) else mesh
    key = cached_jit(jax.random.PRNGKey)(np.uint32(cfg.seed))  # as PRNGKey(seed) for every seed in range
    rng = None
    if cfg.format == "text":
        train_docs = val_docs = ()
        tokenizer, train_tokens, val_tokens = _text_splits(cfg, data)
        data_info = {"sha256": fingerprint([data]), "characters": len(data), "path": str(source)}
    else:
        data_info = {"sha256": fingerprint(data), "documents": len(data), "path": str(source)}
        if cfg.rng == "python":
            rng, docs, tokenizer = microgpt_order(data, cfg.seed)
        else:
            docs = [data[i] for i in np.asarray(jax.random.permutation(subkey(key, "shuffle"), len(data)))]
            tokenizer = Tokenizer.from_docs(docs)
        n_val = math.ceil(len(docs) * cfg.val_fraction)
        train_docs, val_docs = tuple(docs[: len(docs) - n_val]), tuple(docs[len(docs) - n_val :])
        if len(train_docs) < cfg.batch_size * cfg.accum:
            per_step = f"{cfg.batch_size}" + (f" x accum {cfg.accum}" if cfg.accum > 1 else "")
            raise UserError(f"batch size {per_step} is larger than the {len(train_docs)} training documents")
    model = cfg.model(tokenizer.vocab_size)
    check_fits(model, cfg, sizes["fsdp"] * sizes["model"] if sizes else 1)
    if rng is not None:  # microgpt draws every weight from the same generator, in state_dict order
        params = {k: np.asarray(v, cfg.param_dtype) for k, v in gpt_scalar.init(rng, model).items()}
    else:
        params = jax.device_get(gpt.init(subkey(key, "init"), model, cfg.param_dtype))
    if sizes:
        mesh = sharding.make_mesh(sizes, num_devices)
        split = sharding.batch_size_divisor(mesh)
        if cfg.batch_size % split:
            raise UserError(f"--mesh {sharding.mesh_text(mesh)}: the batch of {cfg.batch_size} does not divide "
                            f"over data x fsdp = {split}")
    else:
        mesh = make_mesh(num_devices, cfg.batch_size)
    replicated = NamedSharding(mesh, P())
    if cfg.format == "text":
        truncated, device_data = 0, put((train_tokens,), replicated)
        val_data = put((val_tokens,), replicated) if len(val_tokens) else ()
        per_epoch = steps_per_epoch(cfg, len(train_tokens))
    else:
        rows, n, truncated = encode_docs(train_docs, tokenizer, cfg.block_size)
        device_data = put((rows, n), replicated)
        val_data = put(encode_docs(val_docs, tokenizer, cfg.block_size)[:2], replicated) if val_docs else ()
        per_epoch = steps_per_epoch(cfg, len(train_docs))
    total = math.ceil(cfg.epochs * per_epoch) if cfg.epochs else cfg.steps
    if cfg.warmup >= total:
        raise UserError(f"the warm-up of {cfg.warmup} steps must be shorter than the run's {total}: give --warmup "
                        f"below {total}")
    shardings = whole = None
    if sharding.is_sharded(mesh):
        specs, whole = sharding.param_specs(gpt.param_shapes(model), model.n_head, mesh)
        shardings = sharding.shardings(mesh, specs)
    optimizer = make_optimizer(cfg, total, gpt.param_shapes(model), flat=shardings is None)
    run = Run(cfg, model, tokenizer, train_docs, val_docs, truncated, total, optimizer, mesh, device_data, val_data,
              data_info, rng.getstate() if rng else None, shardings, whole)
    if shardings is None:
        params = put(params, replicated)
        opt_state = cached_jit(lambda p: optimizer.init(ravel_pytree(p)[0]), (cfg, total), name="opt_init",
                               out_shardings=replicated)(params)
    else:  # one Adam state per parameter, laid out like it: a flat vector could not be split per matrix
        params = put(params, shardings)
        opt_state = jax.jit(optimizer.init, out_shardings=run.state_shardings.opt_state)(params)
    step = put(np.int32(0), replicated)
    return run, TrainState(params, opt_state, step, put(np.asarray(key), replicated))


def _text_splits(cfg, data):
    """(tokenizer, train tokens, val tokens) of a text, checked to hold a window of block_size + 1."""
    if not isinstance(data, str):
        raise TypeError("format 'text' trains on one text: pass a str (train.lib.text.load_text)")
    if cfg.rng == "python":
        raise UserError("--format text draws its windows with JAX keys: add --rng jax (or start from a preset: "
                        "--preset shakespeare-char-cpu)")
    tokenizer = text.tokenizer_of(data)
    train_tokens, val_tokens = text.split(tokenizer.encode_array(data), cfg.val_fraction)
    for name, part in (("training", train_tokens), ("validation", val_tokens)):
        if (name == "training" or len(part)) and len(part) <= cfg.block_size:
            raise UserError(f"the {name} split holds {len(part):,} characters, too few for one window of "
                            f"block_size + 1 = {cfg.block_size + 1}")
    return tokenizer, train_tokens, val_tokens


def check_fits(model, cfg, split=1):
    """Refuse, before allocating anything, a model whose parameters, gradients and Adam moments (four
    copies, `split` ways over the devices of a sharded mesh) would not fit in the first device's memory
    (host memory on the CPU)."""
    need = 4 * gpt.num_params(model) * np.dtype(cfg.param_dtype).itemsize / split
    stats = jax.local_devices()[0].memory_stats() or {}
    have = stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise UserError(f"the model has {gpt.num_params(model):,} parameters: with gradients and Adam state that "
                        f"is {need / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB this device has")


def chunk_inputs(run, key, start, count):
    """(what the train chunk takes for steps start .. start+count-1, the real tokens they train on).
    Lines: `step_ids` of `batch_indices`. Text: the step numbers, from which the chunk draws each step's
    windows itself (train/lib/step.py)."""
    if run.is_text:
        tokens = count * run.docs_per_step * run.model.block_size
        return put(np.arange(start, start + count, dtype=np.int32), run.replicated), tokens
    idx = batch_indices(run, key, start, count)
    return step_ids(run, idx), int(run.lengths[idx].sum())


def step_ids(run, idx):
    """What the train chunk takes for documents idx (K, B * accum): the indices themselves at batch size 1,
    else their packing into pairs, on the devices and split along the batch; with accum > 1, one more
    axis after K for the batches a step accumulates."""
    (k, _), accum = idx.shape, run.cfg.accum
    idx = idx.reshape(k * accum, -1)
    if run.cfg.batch_size > 1:
        idx = pack(run.lengths, idx, run.cfg.block_size, run.rows, run.batch_split)
    if accum > 1:
        idx = idx.reshape(k, accum, *idx.shape[1:])
    return put(idx.astype(np.int32), batch_sharding(run.mesh, lead=2 if accum > 1 else 1))


def batch_indices(run, key, start, count):
    """Document indices (count, B * accum) for steps start .. start+count-1.

    rng "python": microgpt's order, docs[(step * B + j) % N]. rng "jax": a fresh permutation of the
    training documents every epoch, from the run's key (a TrainState's `key`).
    """
    n_docs, b = len(run.train_docs), run.docs_per_step
    steps = np.arange(start, start + count)
    if run.cfg.rng == "python":
        return (steps[:, None] * b + np.arange(b)) % n_docs
    host_key = tuple(np.asarray(to_host(key)).tolist())
    out = np.empty((count, b), np.int64)
    for i, s in enumerate(steps):
        epoch, k = divmod(int(s), run.steps_per_epoch)
        out[i] = _epoch_order(host_key, epoch, n_docs)[k * b : (k + 1) * b]
    return out


@lru_cache(maxsize=2)  # the epoch in progress, and the next one across a chunk boundary
def _epoch_order(key, epoch, n_docs):
    return np.asarray(jax.random.permutation(subkey(jnp.asarray(key, jnp.uint32), "batches", epoch), n_docs))
