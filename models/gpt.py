"""microgpt's GPT as pure JAX functions: all positions at once for training, a KV cache for decoding.

GPT-2 with three simplifications, as in microgpt: rmsnorm without weights instead of layernorm, no
biases, ReLU instead of GeLU. Parameters are a flat dict named and shaped like microgpt's
`state_dict`, and a linear layer computes `W @ x`. The scalar twin is `models/gpt_scalar.py`.

The file reads top to bottom as the model. Training uses two hand-written backward passes that compute
the same numbers faster: they sit together in the last section, "Speed", `fast=True` selects them, and
tests/test_models.py holds them equal to the plain path. The plain path is the default, so `jax.grad`,
`jax.jvp`, `jax.jacfwd` and `jax.hessian` of `loss` all work (custom backward passes have no forward mode).
"""

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

RMS_EPS = 1e-5
INIT_STD = 0.08


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 27  # 26 letters + BOS for names.txt
    n_embd: int = 16  # width of the residual stream
    n_head: int = 4  # attention heads; each sees n_embd // n_head channels
    n_layer: int = 1  # transformer blocks
    block_size: int = 16  # longest context, and the rows of the position table

    def __post_init__(self):
        for name in ("vocab_size", "n_embd", "n_head", "n_layer", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


def param_shapes(config):
    """{name: shape} in microgpt's order, which is also the order its weights are drawn in."""
    c, v = config.n_embd, config.vocab_size
    shapes = {"wte": (v, c), "wpe": (config.block_size, c), "lm_head": (v, c)}
    for i in range(config.n_layer):
        for name in ("attn_wq", "attn_wk", "attn_wv", "attn_wo"):
            shapes[f"layer{i}.{name}"] = (c, c)
        shapes[f"layer{i}.mlp_fc1"] = (4 * c, c)
        shapes[f"layer{i}.mlp_fc2"] = (c, 4 * c)
    return shapes


def num_params(config):
    return sum(math.prod(shape) for shape in param_shapes(config).values())


def init(key, config, dtype=jnp.float32):
    """Every weight normal with std 0.08, one key per matrix."""
    shapes = param_shapes(config)
    keys = jax.random.split(key, len(shapes))
    return {name: INIT_STD * jax.random.normal(k, shape, dtype) for k, (name, shape) in zip(keys, shapes.items())}


def rmsnorm(x):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + RMS_EPS)


def linear(x, w):
    """W @ x for x with leading batch axes: (..., nin) -> (..., nout)."""
    return x @ w.T


def embed(table, tokens):
    """Rows of an embedding table: table[tokens]."""
    return table[tokens]


def _heads(x, config):
    return x.reshape(*x.shape[:-1], config.n_head, config.head_dim)  # (..., C) -> (..., H, D)


def _weights(q, k, mask, sqrt_d):
    """Each head's softmax attention weights (..., H, T, S) for queries (..., T, H, D) and keys (..., S, H, D)."""
    scores = jnp.einsum("...thd,...shd->...hts", q, k) / sqrt_d
    # one mask for every head, added as 0 or -inf: XLA fuses the sum into the softmax more cheaply than
    # a select (bench/README.md), and s + 0 is s exactly
    bias = jnp.where(mask, 0.0, -jnp.inf).astype(scores.dtype)
    return jax.nn.softmax(scores + bias[..., None, :, :], axis=-1)


def _mix(q, k, v, mask, sqrt_d, drop=None):
    """Every head's weighted sum of values (..., T, H, D), and the weights (before `drop`, dropout's)."""
    w = _weights(q, k, mask, sqrt_d)  # (..., H, T, S): each query's weights over the keys
    return jnp.einsum("...hts,...shd->...thd", w if drop is None else drop(w), v), w


def _attention(q, k, v, mask, config, fast=False, drop=None):
    """Multi-head attention of queries (..., T, C) over keys/values (..., S, C) where mask (..., T, S) allows.
    `drop`: dropout on the attention weights (training with dropout takes the plain path: the fast
    backward pass keeps no dropout mask)."""
    q, k, v = (_heads(t, config) for t in (q, k, v))
    sqrt_d = math.sqrt(config.head_dim)
    out, weights = _mix(q, k, v, mask, sqrt_d, drop) if drop or not fast else _mix_fast(q, k, v, mask, sqrt_d)
    return out.reshape(*out.shape[:-2], config.n_embd), weights  # (..., T, H, D) -> (..., T, C)


def dropout(x, rate, key):
    """Inverted dropout: each element kept with probability 1 - rate and scaled by 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1 - rate, x.shape)
    return jnp.where(keep, x / (1 - rate), 0).astype(x.dtype)


def _block(params, i, x, attend, drop=lambda x, site: x):
    """One transformer block; `attend(q, k, v)` mixes positions (causal full attention or a KV cache).
    `drop(x, site)`: dropout after each projection back into the residual stream, as nanoGPT's."""
    p = f"layer{i}."
    h = rmsnorm(x)
    x = x + drop(linear(attend(linear(h, params[p + "attn_wq"]), linear(h, params[p + "attn_wk"]),
                               linear(h, params[p + "attn_wv"])), params[p + "attn_wo"]), 3 * i + 1)
    h = rmsnorm(x)
    return x + drop(linear(jax.nn.relu(linear(h, params[p + "mlp_fc1"])), params[p + "mlp_fc2"]), 3 * i + 2)


def apply(params, tokens, config, positions=None, segments=None, return_attention=False, fast=False,
          dropout_rate=0.0, key=None):
    """Logits (..., T, vocab) for tokens (T,) or (B, T), every position attending to itself and before.

    Packed rows, several documents side by side in one row, give each token its position within its
    document and a segment id; a token then attends only within its own segment. With
    `return_attention`, also the softmax weights the logits were computed with, (..., n_layer, H, T, T).
    `fast`: the same numbers, with the hand-written backward passes of the last section (no forward mode).
    `dropout_rate` with a `key`: training's dropout, at nanoGPT's places (the embedding, the attention
    weights, each block's two projections), each site with its own key folded from `key`.
    """
    if dropout_rate and key is not None:
        def drop(x, site):
            return dropout(x, dropout_rate, jax.random.fold_in(key, site))
    else:
        drop = None
    lookup = _embed_fast if fast else embed
    T = tokens.shape[-1]
    mask = jnp.tril(jnp.ones((T, T), bool))
    if segments is not None:
        mask = mask & (segments[..., :, None] == segments[..., None, :])
    pos_emb = params["wpe"][:T] if positions is None else lookup(params["wpe"], positions)
    x = rmsnorm(lookup(params["wte"], tokens) + pos_emb)
    attention = []

    def attend(q, k, v):
        weights_drop = drop and (lambda w: drop(w, 3 * len(attention)))
        out, weights = _attention(q, k, v, mask, config, fast, weights_drop)
        attention.append(weights)
        return out

    if drop:
        x = drop(x, 3 * config.n_layer)
    for i in range(config.n_layer):
        x = _block(params, i, x, attend, *([drop] if drop else []))
    logits = linear(x, params["lm_head"])
    return (logits, jnp.stack(attention, axis=-4)) if return_attention else logits


def token_nll(params, tokens, targets, config, positions=None, segments=None, fast=False, dropout_rate=0.0,
              key=None):
    """-log p(target) at every position, in at least float32 (bfloat16 models get a float32 loss)."""
    logits = apply(params, tokens, config, positions, segments, fast=fast, dropout_rate=dropout_rate, key=key)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(logp * jax.nn.one_hot(targets, config.vocab_size, dtype=logp.dtype), axis=-1)


def loss(params, tokens, targets, mask, config, fast=False):
    """microgpt's loss: per document the mean of -log p(target) over its real positions (mask 1),
    then the mean over documents. tokens, targets and mask are (T,) or (B, T)."""
    nll = token_nll(params, tokens, targets, config, fast=fast)
    mask = mask.astype(nll.dtype)
    per_doc = jnp.sum(nll * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1)
    return jnp.mean(per_doc)


def init_cache(config, dtype=jnp.float32):
    """Empty key and value buffers, one row per position: {"k", "v"} each (n_layer, block_size, n_embd)."""
    shape = (config.n_layer, config.block_size, config.n_embd)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def decode_step(params, cache, token, pos, config):
    """Logits (vocab,) for `token` at position `pos`, given the cache of positions before it.

    Returns (logits, cache with this position's keys and values written in). Fixed shapes throughout,
    so it jits once and runs inside `lax.scan`; `vmap` it for many sequences.
    """
    visible = (jnp.arange(config.block_size) <= pos)[None, :]  # (1, S)
    x = rmsnorm(params["wte"][token] + params["wpe"][pos])[None, :]  # (1, C)
    for i in range(config.n_layer):
        def attend(q, k, v, i=i):
            nonlocal cache
            cache = {"k": cache["k"].at[i, pos].set(k[0]), "v": cache["v"].at[i, pos].set(v[0])}
            return _attention(q, cache["k"][i], cache["v"][i], visible, config)[0]

        x = _block(params, i, x, attend)
    return linear(x[0], params["lm_head"]), cache


# -- Speed -------------------------------------------------------------------------------------------
# What training runs (`fast=True`): the same functions as `_mix` and `embed` above, with backward passes
# written by hand because they are quicker than autodiff's (measured in bench/README.md). Each equals
# autodiff of its plain twin in float64 (tests/test_models.py). Being `custom_vjp`, they have no forward
# mode, which is why the plain path is the default.


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _mix_fast(q, k, v, mask, sqrt_d):
    """`_mix`, whose backward keeps only the softmax weights and writes softmax's backward as one expression."""
    return _mix(q, k, v, mask, sqrt_d)


def _mix_fwd(q, k, v, mask, sqrt_d):
    out, w = _mix(q, k, v, mask, sqrt_d)
    return (out, w), (q, k, v, w)


def _mix_bwd(sqrt_d, residuals, cotangents):
    q, k, v, w = residuals
    g, g_w = cotangents  # g_w: the weights' own cotangent, zero unless something differentiates them
    dv = jnp.einsum("...hts,...thd->...shd", w, g)
    dw = jnp.einsum("...thd,...shd->...hts", g, v) + g_w
    dscores = w * (dw - jnp.sum(w * dw, axis=-1, keepdims=True)) / sqrt_d  # softmax's backward, then the scale
    dq = jnp.einsum("...hts,...shd->...thd", dscores, k)
    dk = jnp.einsum("...hts,...thd->...shd", dscores, q)
    return dq, dk, dv, None


_mix_fast.defvjp(_mix_fwd, _mix_bwd)


@jax.custom_vjp
def _embed_fast(table, tokens):
    """`embed`, whose gradient is a one-hot matrix product rather than JAX's scatter-add: with a tiny
    vocabulary every row of the scatter collides, which on a GPU cost most of a bfloat16 step."""
    return table[tokens]


def _embed_fwd(table, tokens):
    return table[tokens], (tokens, table.shape[0])


def _embed_bwd(residuals, g):
    tokens, vocab = residuals
    one_hot = jax.nn.one_hot(tokens.reshape(-1), vocab, dtype=g.dtype)
    return one_hot.T @ g.reshape(-1, g.shape[-1]), None


_embed_fast.defvjp(_embed_fwd, _embed_bwd)
