"""Checkpoints as one safetensors file: arrays plus JSON metadata, nothing executable, written atomically.

Layout: tensors `params/<name>` and `opt/<path>` (the optax state, named by its pytree path), the
metrics so far under `history/` (so a resumed run's metrics file and loss plot equal an uninterrupted
run's), and metadata `meta` holding step, configs, vocabulary, data fingerprint and RNG state as JSON.
"""

import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from .cli import UserError

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
    tmp = directory / f".{FILENAME}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"cannot write a checkpoint to {directory}: {e.strerror or e}") from None
    return path


def read_checkpoint(directory):
    """(tensors by name, meta dict), or a UserError naming what is wrong with the file."""
    path = Path(directory)
    path = path / FILENAME if path.is_dir() else path
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    blob = path.read_bytes()
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


def history_tensors(rows):
    """Metrics rows ({"step", "loss"} and {"step", "val_loss"}) as arrays; exact, float64."""
    losses = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_loss" in r]
    return {"history/step": np.array([r["step"] for r in losses], np.int64),
            "history/loss": np.array([r["loss"] for r in losses], np.float64),
            "history/val_step": np.array([r["step"] for r in vals], np.int64),
            "history/val_loss": np.array([r["val_loss"] for r in vals], np.float64)}


def history_rows(tensors):
    """The rows back, in the order training wrote them: an evaluation follows its step's loss."""
    if "history/step" not in tensors:
        return []
    rows = [(int(s), 1, {"step": int(s), "loss": float(x)})
            for s, x in zip(tensors["history/step"], tensors["history/loss"])]
    rows += [(int(s), 2, {"step": int(s), "val_loss": float(x)})
             for s, x in zip(tensors["history/val_step"], tensors["history/val_loss"])]
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
