"""micrograd's own demo network on both engines: a 2-16-16-1 ReLU MLP, 100 two-moons points,
max-margin loss plus L2, one forward and backward pass.

micrograd (the package) builds a node per multiply and add and accumulates `.grad` in place;
microjax builds a node per neuron (`dot`) and returns fresh gradients from `value_and_grad`.
"""

import microjax as mj

ALPHA = 1e-4


def micrograd_pass(model, xs, ys):
    """micrograd's demo loss, zero_grad and backward, as its notebook runs them."""
    from micrograd.engine import Value

    scores = [model(list(map(Value, x))) for x in xs]
    losses = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    total = sum(losses) * (1.0 / len(losses)) + ALPHA * sum(p * p for p in model.parameters())
    model.zero_grad()
    total.backward()
    return total.data


def params_from_micrograd(model):
    """The same weights as microjax parameters: a list of layers {"w": [[...]], "b": [...]}."""
    return [{"w": [[w.data for w in n.w] for n in layer.neurons], "b": [n.b.data for n in layer.neurons]}
            for layer in model.layers]


def forward(params, x):
    for i, layer in enumerate(params):
        x = [mj.dot(w, x) + b for w, b in zip(layer["w"], layer["b"])]
        if i < len(params) - 1:
            x = [mj.relu(v) for v in x]
    return x[0]


def loss(params, xs, ys):
    scores = [forward(params, x) for x in xs]
    data_loss = mj.sum([mj.relu(1 - y * s) for y, s in zip(ys, scores)]) * (1.0 / len(scores))
    leaves = mj.tree_flatten(params)[0]
    return data_loss + ALPHA * mj.dot(leaves, leaves)


def microjax_pass(params, xs, ys):
    value, grads = mj.value_and_grad(loss)(params, xs, ys)
    return value
