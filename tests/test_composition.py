"""The composition matrix: every pair (and the listed triples) of grad, jvp, vjp, vmap, jit and hessian,
on hypothesis-generated graphs over every op, against JAX's same composition, float64, 1e-9 relative.

Each transform maps a function of a list of 3 numbers to another function of it, so any of them can be
applied to any other's result: grad and hessian contract the output with fixed weights first (to get a
scalar), jvp and vjp return the primal output with the tangent or the cotangents, vmap maps over three
inputs made from the one given. JAX's versions do the same on arrays; its vmap's result is turned into
a list of outputs, one per example, as microjax's is.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import microjax as mj

from .helpers import BINARY, UNARY, _Jax, run_program

REL = 1e-9
DIRECTION = [0.3, -0.7, 0.5]


def _weights(n):
    return [math.sin(k + 1.0) for k in range(n)]


class Ours:
    """The six transforms on microjax, each a function -> function of a list of 3 numbers."""

    @staticmethod
    def contract(out):
        leaves = mj.tree_leaves(out)
        return mj.dot(_weights(len(leaves)), leaves)

    @classmethod
    def grad(cls, f):
        return mj.grad(lambda xs: cls.contract(f(xs)))

    @classmethod
    def hessian(cls, f):
        return mj.hessian(lambda xs: cls.contract(f(xs)))

    @staticmethod
    def jvp(f):
        return lambda xs: mj.jvp(f, (xs,), (DIRECTION,))

    @staticmethod
    def vjp(f):
        def pulled(xs):
            out, f_vjp = mj.vjp(f, xs)
            leaves, tree = mj.tree_flatten(out)
            return out, f_vjp(tree.unflatten(_weights(len(leaves))))[0]

        return pulled

    @staticmethod
    def vmap(f):
        return lambda xs: mj.vmap(f)([xs, [0.5 * x + 0.1 for x in xs], [-x for x in xs]])

    jit = staticmethod(mj.jit)


class Theirs:
    """The same six on JAX, arrays in place of lists."""

    @staticmethod
    def contract(out):
        flat = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(out)])
        return jnp.dot(jnp.asarray(_weights(flat.size)), flat)

    @classmethod
    def grad(cls, f):
        return jax.grad(lambda xs: cls.contract(f(xs)))

    @classmethod
    def hessian(cls, f):
        return jax.hessian(lambda xs: cls.contract(f(xs)))

    @staticmethod
    def jvp(f):
        return lambda xs: jax.jvp(f, (xs,), (jnp.asarray(DIRECTION),))

    @staticmethod
    def vjp(f):
        def pulled(xs):
            out, f_vjp = jax.vjp(f, xs)
            leaves, tree = jax.tree.flatten(out)
            sizes = np.cumsum([0] + [np.size(leaf) for leaf in leaves])
            w = np.asarray(_weights(int(sizes[-1])))
            ct = [jnp.asarray(w[a:b]).reshape(np.shape(leaf)) for a, b, leaf in zip(sizes[:-1], sizes[1:], leaves)]
            return out, f_vjp(tree.unflatten(ct))[0]

        return pulled

    @staticmethod
    def vmap(f):
        def mapped(xs):
            out = jax.vmap(f)(jnp.stack([xs, 0.5 * xs + 0.1, -xs]))
            return [jax.tree.map(lambda a: a[i], out) for i in range(3)]

        return mapped

    jit = staticmethod(jax.jit)


NAMES = ("grad", "jvp", "vjp", "vmap", "jit", "hessian")
PAIRS = list(itertools.product(NAMES, repeat=2))
TRIPLES = [("jvp", "jit"), ("grad", "grad", "jit"), ("jit", "grad", "grad"), ("hessian", "jit"), ("jit", "vmap"),
           ("vmap", "jit"), ("jvp", "vmap"), ("vmap", "grad", "jit"), ("jit", "vmap", "grad"), ("grad", "vmap", "jit"),
           ("jvp", "grad", "vmap"), ("vjp", "jit", "vmap")]


def composed(lib, names, f):
    for name in reversed(names):  # ("grad", "jit"): grad(jit(f))
        f = getattr(lib, name)(f)
    return f


def numbers(tree):
    return np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(tree)])


def check(names, program, xs, generated=False):
    ours = numbers(composed(Ours, names, lambda v: run_program(program, v, mj))(xs))
    in_range = np.all(np.isfinite(ours)) and np.max(np.abs(ours)) < 1e8
    if generated:
        assume(in_range)  # a generated graph may overflow; JAX's numbers are then not comparable at 1e-9
    else:
        assert in_range
    reference = jax.jit(composed(Theirs, names, lambda v: run_program(program, list(v), _Jax)))  # jitted: sooner
    theirs = numbers(reference(jnp.asarray(xs)))
    assert ours.shape == theirs.shape, names
    scale = max(1.0, float(np.max(np.abs(theirs))))
    np.testing.assert_allclose(ours, theirs, rtol=REL, atol=REL * scale, err_msg=" of ".join(names))


ISSUE = [("jit", "grad"), ("grad", "jit"), ("hessian", "jit"), ("jvp", "jit"), ("jit", "vmap"), ("vmap", "jit"),
         ("jvp", "vmap"), ("vmap", "grad"), ("grad", "grad", "jit"), ("jit", "grad", "grad")]
SMALL = [("tanh", 1, 2), ("mul", 3, 1), ("where", 4, 0), ("max", 2, 5), ("div", 6, 1), ("sin", 7, 3), ("pow", 8, 2),
         ("dot", 9, 4), ("relu", 5, 9)]  # shared nodes, a staged branch, a tie-breaking rule, a traced exponent


@pytest.mark.parametrize("names", ISSUE, ids=lambda n: "(".join(n) + ")" * (len(n) - 1))
def test_the_compositions_jax_tests_autodidax_with(names):
    check(names, SMALL, [0.7, -0.4, 1.3])


# every op once, in one fixed graph with shared nodes: every pair and triple
EVERY_OP = [(op, 3 * k + 1, 5 * k + 2) for k, op in enumerate(UNARY + BINARY)]
MATRIX = PAIRS + TRIPLES


@pytest.mark.slow
@pytest.mark.parametrize("names", MATRIX, ids=lambda n: "(".join(n) + ")" * (len(n) - 1))
def test_every_pair_and_triple_on_a_graph_of_every_op(names):
    check(names, EVERY_OP, [0.7, -0.4, 1.3])


@pytest.mark.slow
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=3, max_size=3),
       program=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 50), st.integers(0, 50)),
                        min_size=1, max_size=8))
@pytest.mark.parametrize("names", MATRIX, ids=lambda n: "(".join(n) + ")" * (len(n) - 1))
def test_every_pair_and_triple_on_random_graphs(names, xs, program):
    check(names, program, xs, generated=True)
