"""What several test modules share: the repository root, microgpt's published figures, tiny settings,
and small helpers. Test modules import from here, never from one another."""

import json
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# microgpt.py's published losses (../shared/reference/microgpt.md) and its 20 samples
GOLDEN_LOSSES = {1: 3.365966947585, 2: 3.424272783872, 3: 3.177802125458, 100: 3.366930921179,
                 200: 2.309743303752, 300: 2.317845353077, 400: 2.342847375394, 500: 2.064466206727,
                 600: 2.485056105942, 700: 2.335729604323, 800: 2.263217700069, 900: 2.778503547873,
                 1000: 2.649694469741}
GOLDEN_SAMPLES = ("kamon ann karai jaire vialan karia yeran anna areli kaina "
                  "konna keylen liole alerin earan lenne kana lara alela anton").split()
SMALL = ["--n-embd", "8", "--n-head", "2", "--block-size", "8"]  # a model that compiles in a moment


def tree_allclose(a, b, rtol, atol=0.0):
    """Same structure, and every leaf equal within rtol/atol, compared in float64."""
    chex.assert_trees_all_equal_structs(a, b)
    chex.assert_trees_all_close(*(jax_tree_f64(t) for t in (a, b)), rtol=rtol, atol=atol)


def jax_tree_f64(tree):
    import jax

    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def read_metrics(path, throughput=False):
    """The rows of a metrics file: losses and evaluations, and with `throughput` also the tokens/s and
    MFU rows, which are timings and so differ from run to run."""
    rows = [json.loads(line) for line in open(path)]
    return rows if throughput else [r for r in rows if "tokens_per_second" not in r]


def run_module(*args, **kwargs):
    """`python -m ARGS` from the repository root, its output captured as text."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, **kwargs)


def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# random expression graphs with shared sub-expressions, over every op (the engine and transform tests)
UNARY = ("exp", "log", "tanh", "relu", "sigmoid", "neg", "pow2", "pow3", "pow_half", "inv", "abs", "sqrt", "sin",
         "cos")
BINARY = ("add", "sub", "mul", "div", "rsub", "radd", "rmul", "rdiv", "pow", "dot", "sum", "max", "min", "where")


def run_program(program, leaves, lib):
    """Each instruction applies an op to earlier nodes (any of them, so nodes are shared). Arguments of
    log, sqrt, division and Value powers go through a positive `x*x + 0.5` first."""
    nodes = list(leaves)
    pos = lambda x: x * x + 0.5  # noqa: E731
    for op, i, j in program:
        x, y = nodes[i % len(nodes)], nodes[j % len(nodes)]
        nodes.append({
            "exp": lambda: lib.exp(lib.tanh(x)), "log": lambda: lib.log(pos(x)), "tanh": lambda: lib.tanh(x),
            "relu": lambda: lib.relu(x), "sigmoid": lambda: lib.sigmoid(x), "neg": lambda: -x,
            "pow2": lambda: x**2, "pow3": lambda: x**3, "pow_half": lambda: pos(x) ** 0.5, "inv": lambda: pos(x) ** -1,
            "abs": lambda: abs(x), "sqrt": lambda: lib.sqrt(pos(x)), "sin": lambda: lib.sin(x), "cos": lambda: lib.cos(x),
            "add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y, "div": lambda: x / pos(y),
            "rsub": lambda: 1.5 - x, "radd": lambda: 2.0 + x, "rmul": lambda: 0.5 * x, "rdiv": lambda: 1.0 / pos(x),
            "pow": lambda: pos(x) ** lib.tanh(y),
            "dot": lambda: lib.dot([x, y, 0.5, x], [y, 2.0, x, x]), "sum": lambda: lib.sum([x, 1.5, y], y),
            "max": lambda: lib.maximum(x, y), "min": lambda: lib.minimum(x, 0.5 * y),
            "where": lambda: lib.where(x > y, x * y, x - y),
        }[op]())
    return sum(nodes[len(leaves):], nodes[0]) if len(nodes) > len(leaves) else nodes[0] * 1.0


class _Jax:
    exp, log, tanh, sigmoid, sqrt, sin, cos = jnp.exp, jnp.log, jnp.tanh, jax.nn.sigmoid, jnp.sqrt, jnp.sin, jnp.cos
    maximum, minimum, where = jnp.maximum, jnp.minimum, jnp.where
    relu = staticmethod(jax.nn.relu)
    dot = staticmethod(lambda xs, ys: sum(x * y for x, y in zip(xs, ys)))
    sum = staticmethod(lambda xs, start: sum(xs, start))


TRANSFORM_REL = 1e-8  # relative to the largest entry of JAX's result, float64 against float64


def close(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(np.asarray(ours, np.float64), theirs, rtol=TRANSFORM_REL, atol=TRANSFORM_REL * scale)
