"""microgpt's GPT on microjax `Value`s, position by position with growing key/value lists.

The scalar twin of `models/gpt.py`: the same parameter dict (nested lists here), the same
computation one number at a time, as microgpt.py writes it. Works on floats and on Values alike.
"""

import functools
import random

import microjax as mj
from microjax import exp, log, relu

from .gpt import INIT_STD, RMS_EPS, param_shapes


def init(rng: random.Random, config):
    """microgpt's initial weights: each matrix row by row from `rng.gauss(0, 0.08)`, in state_dict order."""
    return {name: [[rng.gauss(0, INIT_STD) for _ in range(nin)] for _ in range(nout)]
            for name, (nout, nin) in param_shapes(config).items()}


def linear(x, w):
    return [mj.dot(row, x) for row in w]


def softmax(logits):
    top = mj.stop_gradient(functools.reduce(mj.maximum, logits))  # a constant shift, not differentiated
    exps = [exp(v - top) for v in logits]
    total = mj.sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    ms = mj.dot(x, x) / len(x)
    scale = (ms + RMS_EPS) ** -0.5
    return [xi * scale for xi in x]


def gpt(params, token, pos, keys, values, config):
    """Logits for one token at one position; appends this position's keys and values per layer."""
    x = rmsnorm([t + p for t, p in zip(params["wte"][token], params["wpe"][pos])])
    hd = config.head_dim
    for li in range(config.n_layer):
        p = f"layer{li}."
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, params[p + "attn_wq"])
        keys[li].append(linear(x, params[p + "attn_wk"]))
        values[li].append(linear(x, params[p + "attn_wv"]))
        x_attn = []
        for h in range(config.n_head):
            s = slice(h * hd, (h + 1) * hd)
            q_h, k_h, v_h = q[s], [k[s] for k in keys[li]], [v[s] for v in values[li]]
            weights = softmax([mj.dot(q_h, k_t) / hd**0.5 for k_t in k_h])
            x_attn.extend(mj.dot(weights, [v_t[j] for v_t in v_h]) for j in range(hd))
        x = [a + b for a, b in zip(linear(x_attn, params[p + "attn_wo"]), x_residual)]
        x_residual = x
        x = [relu(h) for h in linear(rmsnorm(x), params[p + "mlp_fc1"])]
        x = [a + b for a, b in zip(linear(x, params[p + "mlp_fc2"]), x_residual)]
    return linear(x, params["lm_head"])


def apply(params, tokens, config):
    """Logits for every position of a sequence, one position at a time as microgpt runs it."""
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    return [gpt(params, t, pos, keys, values, config) for pos, t in enumerate(tokens)]


def loss(params, tokens, targets, config):
    """The mean over positions of -log softmax(logits)[target], for one document."""
    logits = apply(params, tokens, config)
    losses = [-log(softmax(row)[t]) for row, t in zip(logits, targets)]
    return (1 / len(losses)) * mj.sum(losses)
