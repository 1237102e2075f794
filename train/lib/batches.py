"""How a step's documents become rows: one per row, or packed two to a row with positions, segment
ids and loss weights, so that the computation follows real tokens rather than padding."""

import jax
import jax.numpy as jnp
import numpy as np

from models import gpt


def in_compute_dtype(params, compute_dtype):
    """Mixed precision: the model computes in compute_dtype from master parameters kept wider."""
    return jax.tree.map(lambda p: p.astype(compute_dtype), params)


def batch_loss(params, rows, n, model, compute_dtype):
    """microgpt's loss over a batch of encoded rows: inputs rows[:, :-1], targets rows[:, 1:]."""
    params = in_compute_dtype(params, compute_dtype)
    mask = jnp.arange(rows.shape[-1] - 1) < n[..., None]
    return gpt.loss(params, rows[..., :-1], rows[..., 1:], mask, model)


def rows_per_step(batch_size, num_devices):
    """Rows a step packs its documents into: two names share a row of block_size almost always."""
    rows = 1 if batch_size == 1 else batch_size // 2 + max(2, batch_size // 32)
    return -(-rows // num_devices) * num_devices


def pack(lengths, idx, block_size, rows, multiple=1):
    """Pair each step's documents for packed rows: the longest left with the shortest that fits beside it.

    lengths (N,): real positions of every document; idx (K, B): each step's documents. Returns
    (K, R, 2) document indices, -1 for none: R = `rows`, or more (a multiple of `multiple`) when a step
    needs more. A padded row costs as much as a full one, and a name fills under half of one.
    """
    steps = []
    for docs in idx:
        order = docs[np.argsort(-lengths[docs], kind="stable")]
        i, j, step = 0, len(order) - 1, []
        while i <= j:
            if i < j and lengths[order[i]] + lengths[order[j]] <= block_size:
                step.append((order[i], order[j]))
                j -= 1
            else:
                step.append((order[i], -1))
            i += 1
        steps.append(step)
    need = max(len(step) for step in steps)
    pairs = np.full((len(steps), rows if need <= rows else -(-need // multiple) * multiple, 2), -1, np.int32)
    for k, step in enumerate(steps):
        pairs[k, : len(step)] = step
    return pairs


def unpack(rows, n, pairs, batch_size, dtype):
    """The packed batch of pairs (R, 2): tokens, targets, positions and segment ids (R, T), and loss
    weights 1 / (document length * batch_size) on real positions, 0 on padding, so that the weighted
    sum of -log p is microgpt's loss: the mean over documents of each one's mean."""
    T = rows.shape[-1] - 1
    first, second = pairs[:, :1], pairs[:, 1:]
    n_first = jnp.where(first >= 0, n[jnp.maximum(first, 0)], 0)
    n_second = jnp.where(second >= 0, n[jnp.maximum(second, 0)], 0)
    pos = jnp.arange(T)
    in_first, real = pos < n_first, pos < n_first + n_second
    doc = jnp.maximum(jnp.where(in_first, first, second), 0)
    offset = jnp.where(in_first, pos, jnp.where(real, pos - n_first, 0))
    segments = jnp.where(in_first, 0, jnp.where(real, 1, 2))  # padding is a segment of its own
    length = jnp.where(in_first, n_first, n_second)
    weights = jnp.where(real, 1 / (jnp.maximum(length, 1).astype(dtype) * batch_size), 0).astype(dtype)
    return rows[doc, offset], rows[doc, offset + 1], offset, segments, weights


def one_per_row(rows, n, idx, dtype):
    """The batch of documents idx (B,) one per row, with `unpack`'s outputs: a single document needs
    no packing (microgpt's layout), and positions and segments are then implicit."""
    real = jnp.arange(rows.shape[-1] - 1) < n[idx][:, None]
    weights = jnp.where(real, 1 / (n[idx][:, None].astype(dtype) * idx.shape[0]), 0).astype(dtype)
    return rows[idx, :-1], rows[idx, 1:], None, None, weights


def length_buckets(block_size):
    """Row lengths a one-document step may be cut to: half the block and the whole block. Positions past
    a document's end change nothing (their loss weight is 0 and attention is causal) but cost as much as
    real ones, and 85% of names fit in 8 of the 16 (bench/README.md has the step times)."""
    return tuple(sorted({max(1, block_size // 2), block_size}))


def first_positions(batch, length):
    """The batch cut to its first `length` positions."""
    return tuple(None if x is None else x[..., :length] for x in batch)


def real_length(batch):
    """The most real positions (nonzero loss weight) of any row in the batch."""
    return jnp.max(jnp.sum(batch[-1] > 0, axis=-1))


def packed_loss(params, batch, model, compute_dtype, dropout_rate=0.0, key=None):
    """The weighted sum of -log p over a batch from `unpack`, `one_per_row` or `text_batch`: microgpt's
    loss (nanoGPT's for text). Computed with the model's fast backward passes (`models.gpt`, fast=True),
    which training differentiates; `dropout_rate` and `key`: training's dropout."""
    tokens, targets, positions, segments, weights = batch
    params = in_compute_dtype(params, compute_dtype)
    return jnp.sum(weights * gpt.token_nll(params, tokens, targets, model, positions, segments, fast=True,
                                           dropout_rate=dropout_rate, key=key))


def text_batch(rows, dtype):
    """The batch of windows (..., B, T + 1) of one text, with `unpack`'s outputs: every position counts the
    same, so the weighted sum is nanoGPT's loss, the mean over all B * T positions."""
    weights = jnp.full(rows[..., 1:].shape, 1 / (rows.shape[-2] * (rows.shape[-1] - 1)), dtype)
    return rows[..., :-1], rows[..., 1:], None, None, weights
