"""The scalar engine on a generic expression: value_and_grad of a random composite graph over every op.

micrograd's demo network is mostly `dot` nodes; this case weighs every primitive about equally, and
reuses intermediate nodes (as micrograd's composite-expression test does), so a change to any op's
rule or to a pass shows here: first order (value_and_grad), forward mode (jvp), and second order (a
Hessian-vector product, jvp of grad, beside the first-order pass it costs a few times).
"""

import random

import microjax as mj

from .timing import median_seconds, row

N_OPS = 3000  # about 5,000 nodes, with the positive-argument guards


def _pos(x):
    return x * x + 0.5  # a positive argument for log, div and pow


OPS = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
       "div": lambda x, y: x / _pos(y), "neg": lambda x, y: -x, "pow2": lambda x, y: x**2,
       "pow_half": lambda x, y: _pos(x) ** 0.5, "pow_value": lambda x, y: _pos(x) ** mj.tanh(y),
       "exp": lambda x, y: mj.exp(mj.tanh(x)), "log": lambda x, y: mj.log(_pos(x)), "tanh": lambda x, y: mj.tanh(x),
       "relu": lambda x, y: mj.relu(x), "sigmoid": lambda x, y: mj.sigmoid(x),
       "dot": lambda x, y: mj.dot([x, y, 0.5], [y, x, x]), "sum": lambda x, y: mj.sum([x, y, 1.5], y),
       "rsub": lambda x, y: 1.5 - x, "rdiv": lambda x, y: 1.0 / _pos(x)}


def build(n_ops=N_OPS, seed=0):
    """(program, inputs): a fixed random sequence of ops over 8 inputs, each op reading earlier nodes."""
    rng = random.Random(seed)
    program = [(OPS[rng.choice(sorted(OPS))], rng.randrange(1 << 30), rng.randrange(1 << 30)) for _ in range(n_ops)]
    return program, [rng.uniform(-1.0, 1.0) for _ in range(8)]


def expression(program, xs):
    """Apply the program to xs: the first operand is one of the last 16 nodes, the second any earlier node."""
    nodes = list(xs)
    for op, i, j in program:
        out = op(nodes[-1 - i % min(16, len(nodes))], nodes[j % len(nodes)])
        nodes.append(mj.tanh(out) if abs(out.data) > 4.0 else out)  # keep values in range: every op stays defined
    return mj.sum(nodes)


def run(args):
    program, xs = build()
    f = lambda xs: expression(program, xs)  # noqa: E731
    vg, along = mj.value_and_grad(f), [1.0] * len(xs)
    first = median_seconds(lambda: vg(xs), args.reps)
    forward = median_seconds(lambda: mj.jvp(f, (xs,), (along,)), args.reps)
    hvp = median_seconds(lambda: mj.jvp(mj.grad(f), (xs,), (along,)), args.reps)
    name = f"random expression over every op ({N_OPS} ops)"
    return [row(f"{name}, value_and_grad", "expression_grad_ms", first * 1e3, "ms/pass"),
            row(f"{name}, jvp", "expression_jvp_ms", forward * 1e3, "ms/pass"),
            row(f"{name}, Hessian-vector product jvp(grad)", "expression_hvp_ms", hvp * 1e3, "ms/pass",
                "value_and_grad", first * 1e3)]
