"""The lesson's network as pure functions over plain lists: neuron, layer, MLP, loss.

Parameters are a list of layers, each `{"w": [[...] per neuron], "b": [... per neuron]}`; the JAX
model in `models/mlp.py` uses the same structure with arrays in place of lists.
"""

import random

from .lax import dot, tanh
from .tree_util import tree_flatten

__all__ = ["init_mlp", "neuron", "layer", "mlp", "squared_error", "sgd"]


def init_mlp(nin, nouts, seed=0):
    """Weights and biases uniform in [-1, 1], as in the lesson, from a seeded `random.Random`."""
    rng = random.Random(seed)
    sizes = [nin] + list(nouts)
    return [{"w": [[rng.uniform(-1, 1) for _ in range(n_in)] for _ in range(n_out)],
             "b": [rng.uniform(-1, 1) for _ in range(n_out)]}
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def neuron(w, b, x):
    """tanh(w . x + b)"""
    return tanh(dot(w, x) + b)


def layer(params, x):
    return [neuron(w, b, x) for w, b in zip(params["w"], params["b"])]


def mlp(params, x):
    """The network's output for one input: a list, or a single value when there is one output."""
    for p in params:
        x = layer(p, x)
    return x[0] if len(x) == 1 else x


def squared_error(params, xs, ys):
    """The lesson's loss: the sum over examples of (prediction - target)^2."""
    return sum((mlp(params, x) - y) ** 2 for x, y in zip(xs, ys))


def sgd(params, grads, lr):
    """The lesson's update, p <- p - lr * dL/dp, as a new tree: nothing is changed in place. The gradient
    must have the parameters' structure (dicts paired by key, not by order)."""
    leaves, treedef = tree_flatten(params)
    return treedef.unflatten([p - lr * g for p, g in zip(leaves, treedef.flatten_up_to(grads))])
