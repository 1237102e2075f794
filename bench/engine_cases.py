"""The scalar engine on a generic expression: value_and_grad of a random composite graph over every op.

micrograd's demo network is mostly `dot` nodes; this case weighs every primitive about equally, and
reuses intermediate nodes (as micrograd's composite-expression test does), so a change to any op's
rule or to a pass shows here: first order (value_and_grad), forward mode (jvp), and second order (a
Hessian-vector product, jvp of grad, beside the first-order pass it costs a few times).
"""

import random

import microjax as mj

from .timing import interleaved, median_seconds, row, skipped

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


# -- jit: the traced program against the graph, on the GPT twin and micrograd's demo ----------------
def gpt_first_step():
    """(loss's arguments) at microgpt's first step: its seed, shuffle, initial weights and first document."""
    from models import gpt, gpt_scalar
    from train.lib.data import load_docs, microgpt_order, resolve_data_path

    rng, names, tok = microgpt_order(load_docs(resolve_data_path()), seed=42)
    config = gpt.GPTConfig(tok.vocab_size, n_embd=16, n_head=4, n_layer=1, block_size=16)
    params = gpt_scalar.init(rng, config)
    tokens = [tok.bos] + tok.encode(names[0]) + [tok.bos]
    n = min(config.block_size, len(tokens) - 1)
    return params, tuple(tokens[:n]), tuple(tokens[1 : n + 1]), config


def run_jit(args):
    import time

    from models import gpt_scalar

    from train.lib.lesson import demo_loss, micrograd_pass, moons, params_from_micrograd

    rows = []
    gpt_args = gpt_first_step()
    eager = mj.value_and_grad(gpt_scalar.loss)
    jitted = mj.jit(mj.value_and_grad(gpt_scalar.loss), static_argnums=(1, 2, 3))
    start = time.perf_counter()
    value, _ = jitted(*gpt_args)
    first = time.perf_counter() - start
    assert abs(value - eager(*gpt_args)[0]) < 1e-12  # the same loss
    ours, theirs = interleaved([lambda: jitted(*gpt_args), lambda: eager(*gpt_args)], max(3, args.reps))
    name = "GPT twin (models/gpt_scalar.py), microgpt's first step"
    rows += [row(f"{name}: jit(value_and_grad), per call after the first", "gpt_twin_jit_grad_ms", ours * 1e3,
                 "ms/call", "value_and_grad (the graph)", theirs * 1e3),
             row("  its first call: tracing the program and compiling it", "gpt_twin_jit_first_call_s", first, "s")]
    try:
        from micrograd.nn import MLP
    except ImportError:
        return rows + [skipped("micrograd demo with jit", "micrograd_jit_ms", "ms/pass", "micrograd")]
    random.seed(0)
    model = MLP(2, [16, 16, 1])
    xs, ys = moons()
    params = params_from_micrograd(model)
    step = mj.jit(mj.value_and_grad(demo_loss))
    assert abs(step(params, xs, ys)[0] - micrograd_pass(model, xs, ys)) < 1e-9  # the same computation

    def train_step():  # what training runs: the jitted gradient, then the update (the weights move)
        nonlocal params
        params = mj.sgd(params, step(params, xs, ys)[1], 1e-9)

    ours, graph = interleaved([train_step, lambda: mj.value_and_grad(demo_loss)(params, xs, ys)], max(3, args.reps))
    theirs = interleaved([lambda: micrograd_pass(model, xs, ys)], max(3, args.reps // 2))[0]
    rows += [row("micrograd demo trained with jit(value_and_grad) + sgd, per step", "micrograd_jit_ms", ours * 1e3,
                 "ms/step", "micrograd 0.1.0 (forward + backward)", theirs * 1e3, graph_ms=graph * 1e3)]
    return rows
