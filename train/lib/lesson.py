"""The micrograd lesson's data and runs: its four examples, the 3-4-4-1 MLP trained on them by plain
gradient descent on the scalar engine and on the JAX model, and micrograd's two-moons demo (its points,
its 2-16-16-1 network's loss on both engines).

There is no "zero the gradients" step: `value_and_grad` returns fresh gradients every call.
"""

import math
import random

import microjax as mj
from microjax import sgd, squared_error, value_and_grad

DEMO_ALPHA = 1e-4  # the demo loss's L2 weight, as micrograd's notebook has it

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]
SIZES = (4, 4, 1)  # the layers after the 3 inputs


def train_microjax(params, steps, lr):
    """Yield (step, loss, params) for each step of gradient descent on the scalar engine."""
    loss_and_grad = value_and_grad(squared_error)
    for step in range(1, steps + 1):
        loss, grads = loss_and_grad(params, XS, YS)
        params = sgd(params, grads, lr)
        yield step, loss, params


def train_jax(params, steps, lr):
    """The same run on the JAX model (models/mlp.py), float64, one jitted step a call."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from models import mlp as jmlp

    xs, ys = jnp.asarray(XS, jnp.float64), jnp.asarray(YS, jnp.float64)

    @jax.jit
    def step(params):
        loss, grads = jax.value_and_grad(jmlp.squared_error)(params, xs, ys)
        return loss, jax.tree.map(lambda p, g: p - lr * g, params, grads)

    params = jmlp.from_microjax(params, jnp.float64)
    for i in range(1, steps + 1):
        loss, params = step(params)
        yield i, float(loss), params


def moons(n=100, noise=0.1, seed=1):
    """Two interleaving half circles, labels -1 and 1 (what sklearn's make_moons draws), as micrograd's
    demo notebook fits them."""
    rng = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        t = math.pi * (i % (n // 2)) / (n // 2 - 1)
        upper = i < n // 2
        x, y = (math.cos(t), math.sin(t)) if upper else (1 - math.cos(t), 0.5 - math.sin(t))
        xs.append([x + rng.gauss(0, noise), y + rng.gauss(0, noise)])
        ys.append(1.0 if upper else -1.0)
    return xs, ys


def params_from_micrograd(model):
    """A micrograd `MLP`'s weights as microjax parameters: a list of layers {"w": [[...]], "b": [...]}."""
    return [{"w": [[float(w.data) for w in n.w] for n in layer.neurons], "b": [float(n.b.data) for n in layer.neurons]}
            for layer in model.layers]


def demo_forward(params, x):
    """micrograd's demo network on microjax: ReLU layers, a linear output, a node per neuron (`dot`)."""
    for i, layer in enumerate(params):
        x = [mj.dot(w, x) + b for w, b in zip(layer["w"], layer["b"])]
        if i < len(params) - 1:
            x = [mj.relu(v) for v in x]
    return x[0]


def demo_loss(params, xs, ys):
    """micrograd's demo loss: the mean max-margin loss plus DEMO_ALPHA times the parameters' squares."""
    scores = [demo_forward(params, x) for x in xs]
    data_loss = mj.sum([mj.relu(1 - y * s) for y, s in zip(ys, scores)]) * (1.0 / len(scores))
    leaves = mj.tree_leaves(params)
    return data_loss + DEMO_ALPHA * mj.dot(leaves, leaves)


def micrograd_pass(model, xs, ys):
    """The same loss on micrograd (the package), then zero_grad and backward, as its notebook runs them;
    micrograd builds a node per multiply and add and accumulates `.grad` in place."""
    from micrograd.engine import Value

    scores = [model(list(map(Value, x))) for x in xs]
    losses = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    total = sum(losses) * (1.0 / len(losses)) + DEMO_ALPHA * sum(p * p for p in model.parameters())
    model.zero_grad()
    total.backward()
    return total.data
