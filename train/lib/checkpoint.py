"""Checkpoints as one safetensors file: arrays plus JSON metadata, nothing executable, written atomically;
what a run saves, how a resumed run is checked against it and restored, and a trained model loaded back.

Layout: tensors `params/<name>` and `opt/<path>` (the optax state, named by its pytree path), the
metrics so far under `history/` (so a resumed run's metrics file and loss plot equal an uninterrupted
run's), and metadata `meta` holding step, configs, vocabulary, data fingerprint and RNG state as JSON.

A run whose parameters are split over a mesh saves the same names in the sharded format instead
(train/lib/shards.py: one file per process and a manifest, nothing gathered), and either format
resumes on any mesh: each array is built for the new layout from the blocks each device needs.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from models import gpt

from . import shards
from .config import RESUME_MAY_CHANGE, TrainConfig
from .data import Tokenizer
from .devices import is_main_process, put, to_host
from .errors import UserError

FORMAT = "microjax-checkpoint-1"
FILENAME = "checkpoint.safetensors"


def _named_leaves(prefix, tree):
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {prefix + jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def save_checkpoint(directory, params, opt_state, meta, history=()):
    """Write DIR/checkpoint.safetensors so that a reader sees the old file or the new one, never half."""
    directory = Path(directory)
    tensors = {k: np.asarray(jax.device_get(v)) for k, v in
               {**_named_leaves("params", params), **_named_leaves("opt", opt_state)}.items()}
    tensors.update(history_tensors(history))
    blob = save(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta), "sha256": _digest(tensors)})
    path = directory / FILENAME
    try:
        directory.mkdir(parents=True, exist_ok=True)  # again: the folder may have been removed since the start
    except OSError as e:
        raise UserError(f"cannot write a checkpoint to {directory}: {e.strerror or e}") from None
    shards.atomic_write(path, blob)
    return path


def exists(directory):
    return (Path(directory) / FILENAME).exists() or shards.exists(directory)


def is_sharded(directory):
    """Does DIR hold its checkpoint in the sharded format (the newer one, should both be there)?"""
    directory = Path(directory)
    if not shards.exists(directory):
        return False
    if not (directory / FILENAME).exists():
        return True
    try:  # a save that crashed between writing one format and removing the other: the later step wins
        with open(directory / FILENAME, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            single = json.loads(json.loads(f.read(n))["__metadata__"]["meta"])["step"]
        return shards.read_meta(directory)["step"] >= single
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return True


def read_checkpoint(directory):
    """(tensors by name, meta dict), or a UserError naming what is wrong with the file. A sharded
    checkpoint's tensors are a `shards.Source`: a mapping that reads each array, or a block of it, when
    asked."""
    path = Path(directory)
    if path.is_dir() and is_sharded(path):
        source = shards.Source(path)
        return source, source.meta
    path = path / FILENAME if path.is_dir() else path
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}") from None
    except OSError as e:
        raise UserError(f"cannot read the checkpoint {path}: {e.strerror or e}") from None
    try:
        tensors = load(blob)
        header = _header_metadata(blob)
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}, expected {FORMAT!r}")
        meta = json.loads(header["meta"])
        if header.get("sha256") != _digest(tensors):
            raise ValueError("its arrays do not match their checksum")
    except (SafetensorError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise UserError(f"damaged or foreign checkpoint {path}: {e}") from None
    return tensors, meta


EVAL_EXTRAS = ("train_loss", "val_whole")  # what an evaluation row may hold beside val_loss (NaN: absent)


def history_tensors(rows):
    """Metrics rows ({"step", "loss"}, and evaluations {"step", "val_loss"} with EVAL_EXTRAS) as arrays;
    exact, float64."""
    losses = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_loss" in r]
    tensors = {"history/step": np.array([r["step"] for r in losses], np.int64),
               "history/loss": np.array([r["loss"] for r in losses], np.float64),
               "history/val_step": np.array([r["step"] for r in vals], np.int64),
               "history/val_loss": np.array([r["val_loss"] for r in vals], np.float64)}
    for name in EVAL_EXTRAS:
        if any(name in r for r in vals):
            tensors[f"history/{name}"] = np.array([r.get(name, np.nan) for r in vals], np.float64)
    return tensors


def history_rows(tensors):
    """The rows back, in the order training wrote them: an evaluation follows its step's loss."""
    if "history/step" not in tensors:
        return []
    rows = [(int(s), 1, {"step": int(s), "loss": float(x)})
            for s, x in zip(tensors["history/step"], tensors["history/loss"])]
    extras = {name: tensors[f"history/{name}"] for name in EVAL_EXTRAS if f"history/{name}" in tensors}
    for i, (s, x) in enumerate(zip(tensors["history/val_step"], tensors["history/val_loss"])):
        row = {"step": int(s), "val_loss": float(x)}
        row.update({name: float(v[i]) for name, v in extras.items() if not np.isnan(v[i])})
        rows.append((int(s), 2, row))
    return [row for *_, row in sorted(rows, key=lambda r: r[:2])]


def _digest(tensors):
    """sha256 over every array's name, dtype, shape and bytes: safetensors itself checks no data."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{t.dtype.str}:{t.shape}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def _header_metadata(blob):
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]).get("__metadata__") or {}


def restore(tensors, prefix, template):
    """Fill the pytree `template` (arrays or shape/dtype structs) with the checkpoint's tensors,
    checking that every name is there with the expected shape."""
    named, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, like in named:
        name = prefix + jax.tree_util.keystr(path)
        if name not in tensors:
            raise UserError(f"checkpoint does not match this model: it has no {name!r}")
        value = tensors[name]
        if value.shape != tuple(like.shape):
            raise UserError(f"checkpoint does not match this model: {name!r} has shape {value.shape}, "
                            f"expected {tuple(like.shape)}")
        leaves.append(value.astype(like.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


# -- what a run saves, and resuming it -----------------------------------------------------------------
def run_meta(run, state):
    return {"step": int(to_host(state.step)), "total_steps": run.total_steps, "train": dataclasses.asdict(run.cfg),
            "model": dataclasses.asdict(run.model), "vocab": run.tokenizer.chars, "bos": run.tokenizer.has_bos, "data": run.data_info,
            "python_rng": run.python_rng, "jax_key": to_host(state.key).tolist(),
            "compute_dtype": np.dtype(run.cfg.compute_dtype).name}


def save_run(directory, run, state, history):
    """Save a run's state and metrics so far. Replicated: process 0 writes one file. Sharded: every
    process writes the shards it owns, process 0 the manifest (train/lib/shards.py)."""
    if run.shardings is None:
        if is_main_process():
            save_checkpoint(directory, to_host(state.params), to_host(state.opt_state), run_meta(run, state),
                            history)
            shards.remove(directory)
        return
    arrays = {**_named_leaves("params", state.params), **_named_leaves("opt", state.opt_state)}
    shards.save(directory, arrays, run_meta(run, state), history_tensors(history))
    if is_main_process():
        (Path(directory) / FILENAME).unlink(missing_ok=True)


def resumed_config(meta, overrides):
    """The checkpoint's TrainConfig, with `overrides` (settings given now) that may change on resume."""
    try:
        saved = TrainConfig(**meta["train"])
    except (KeyError, TypeError, UserError) as e:
        raise UserError(f"damaged checkpoint: its training settings do not read ({e})") from None
    for name, value in overrides.items():
        if name not in RESUME_MAY_CHANGE and value != getattr(saved, name):
            raise UserError(f"checkpoint does not match: it was trained with {name}={getattr(saved, name)!r}, "
                            f"not {value!r}")
    return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if k in RESUME_MAY_CHANGE})


def restore_run(run, state, tensors, meta):
    """(TrainState, history) of a checkpoint, for a run prepared from its settings (`state` gives the
    shapes, dtypes and placement), after checking that it was trained on the same documents."""
    saved = meta.get("data")
    if not saved:
        raise UserError("the checkpoint records no fingerprint of its data (it was written before checkpoints "
                        "kept one), so resuming it cannot be checked against this data; start a new run")
    if saved.get("sha256") != run.data_info["sha256"]:
        raise UserError(f"checkpoint was trained on other data ({_describe(saved)}), not on this run's "
                        f"({_describe(run.data_info)}); resuming would change the document order and the split")
    step = int(meta["step"])
    if step > run.total_steps:
        raise UserError(f"the checkpoint is at step {step}, past the {run.total_steps} steps asked for")
    layout = [(k, state.params[k].shape) for k in sorted(state.params)]  # the order ravel_pytree flattens in
    state = state._replace(params=_reshard(tensors, "params", state.params, layout),
                           opt_state=_reshard(tensors, "opt", state.opt_state, layout),
                           step=put(np.int32(step), run.replicated))
    return state, history_rows(tensors)


def _reshard(tensors, prefix, template, layout):
    """The pytree `template` (global arrays) filled from a checkpoint of either format, each array built
    in the template's own layout from just the blocks this process's devices hold, whatever mesh wrote
    it; Adam's state converts between one flat vector and one array per parameter (`shards.read_leaf`)."""
    named, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, like in named:
        name = prefix + jax.tree_util.keystr(path)
        try:
            shape = shards.leaf_shape(tensors, name, layout)
        except KeyError:
            raise UserError(f"checkpoint does not match this model: it has no {name!r}") from None
        except ValueError as e:
            raise UserError(f"checkpoint does not match this model: {e}") from None
        if shape != tuple(like.shape):
            raise UserError(f"checkpoint does not match this model: {name!r} has shape {shape}, "
                            f"expected {tuple(like.shape)}")
        block = lambda index, name=name, like=like: shards.read_leaf(tensors, name, index, layout).astype(like.dtype)  # noqa: E731
        leaves.append(jax.make_array_from_callback(like.shape, like.sharding, block))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _describe(data):
    if "characters" in data:
        return f"{data['characters']:,} characters from {data.get('path', '?')}, sha256 {data['sha256'][:12]}…"
    return f"{data.get('documents', '?')} documents from {data.get('path', '?')}, sha256 {data['sha256'][:12]}…"


def load_model(directory):
    """(params, GPTConfig, Tokenizer) from a checkpoint, in the dtype it was trained in."""
    tensors, meta = read_checkpoint(directory)
    try:
        config = gpt.GPTConfig(**meta["model"])
        tokenizer = Tokenizer(meta["vocab"], bool(meta.get("bos", True)))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"damaged checkpoint {directory}: bad model description ({e})") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(f"damaged checkpoint {directory}: vocabulary of {tokenizer.vocab_size} for a model of "
                        f"{config.vocab_size}")
    dtype = tensors.get("params['wte']", np.zeros(0, np.float32)).dtype
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    template = {name: jax.ShapeDtypeStruct(shape, dtype) for name, shape in gpt.param_shapes(config).items()}
    return restore(tensors, "params", template), config, tokenizer
