"""Composable transforms against JAX (float64): jvp, nested grad, hessian, make_jaxpr."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import microjax as mj

from .test_engine import BINARY, UNARY, _Jax, run_program

REL = 1e-8  # relative to the largest entry of JAX's result, float64 against float64
DOMAIN_ERRORS = (OverflowError, ZeroDivisionError, ValueError)


def close(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(np.asarray(ours, np.float64), theirs, rtol=REL, atol=REL * scale)


def finite(*trees):
    leaves = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(trees)])
    return bool(np.all(np.isfinite(leaves)) and np.all(np.abs(leaves) < 1e12))


# random expression graphs over every op, with a Value exponent and shared sub-expressions -------------
@settings(max_examples=20, deadline=None)
@given(leaves=st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=3, max_size=3),  # one shape: JAX compiles once
       direction=st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=3, max_size=3),
       program=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 50), st.integers(0, 50)),
                        min_size=1, max_size=12))
def test_random_graphs_forward_mode_hessian_hvp_and_third_order_match_jax(leaves, direction, program):
    n, v = len(leaves), direction
    f = lambda xs: run_program(program, xs, mj)  # noqa: E731
    jf = lambda xs: run_program(program, list(xs), _Jax)  # noqa: E731
    line = lambda t: f([x + t * d for x, d in zip(leaves, v)])  # noqa: E731  f along v, for the third derivative
    jline = lambda t: jf(jnp.asarray(leaves) + t * jnp.asarray(v))  # noqa: E731
    try:
        ours = (mj.jvp(f, (leaves,), (v,)), mj.hessian(f)(leaves), mj.jvp(mj.grad(f), (leaves,), (v,))[1],
                mj.grad(mj.grad(mj.grad(line)))(0.0))
    except DOMAIN_ERRORS:
        assume(False)
    assume(finite(ours))
    x, t = jnp.asarray(leaves), jnp.asarray(v)
    d = lambda g: lambda s: jax.jvp(g, (s,), (1.0,))[1]  # noqa: E731  JAX's third derivative by forward mode:
    theirs = (jax.jvp(jf, (x,), (t,)), jax.hessian(jf)(x), jax.jvp(jax.grad(jf), (x,), (t,))[1],
              d(d(d(jline)))(0.0))  # the same number as its grad(grad(grad)), ten times sooner in eager JAX
    assume(finite(theirs))
    for a, b in zip((*ours[0], *ours[1:]), (*theirs[0], *theirs[1:])):
        close(a, b)
    assert isinstance(ours[1], list) and all(isinstance(row, list) and len(row) == n for row in ours[1])


# perturbation confusion: nested derivatives keep their variables apart ------------------------------
def test_no_perturbation_confusion_in_reverse_forward_and_mixed_modes():
    x = 3.0
    d = lambda f: lambda x: mj.jvp(f, (x,), (1.0,))[1]  # noqa: E731  forward-mode derivative
    jd = lambda f: lambda x: jax.jvp(f, (x,), (1.0,))[1]  # noqa: E731
    for outer, inner in ((mj.grad, mj.grad), (d, d), (mj.grad, d), (d, mj.grad)):
        # d/dx [x * d/dy (x y)] = d/dx x^2 = 2x, not x^2's 2x + x
        assert outer(lambda x: x * inner(lambda y: x * y)(1.0))(x) == 2 * x
        # d/dx [d/dy (y x) at y = x] = d/dx x = 1, not 2
        assert outer(lambda x: inner(lambda y: y * x)(x))(x) == 1.0
    for outer, inner in ((jax.grad, jax.grad), (jd, jd)):  # what JAX says
        assert outer(lambda x: x * inner(lambda y: x * y)(1.0))(x) == 2 * x
        assert outer(lambda x: inner(lambda y: y * x)(x))(x) == 1.0


def test_grad_of_a_function_that_calls_grad_twice_and_closes_over_x():
    def f(x):
        g = mj.grad(lambda y: mj.tanh(x * y) * y)  # closes over the outer x
        return g(x) * g(2.0) + mj.grad(lambda z: z * z * x)(x)

    def jf(x):
        g = jax.grad(lambda y: jnp.tanh(x * y) * y)
        return g(x) * g(2.0) + jax.grad(lambda z: z * z * x)(x)

    for x in (0.3, -1.2):
        close(mj.grad(f)(x), jax.grad(jf)(x))
        close(mj.value_and_grad(mj.grad(f))(x), jax.value_and_grad(jax.grad(jf))(x))


# structures, as JAX returns them ------------------------------------------------------------------
def test_jacobians_and_hessians_have_jax_structure():
    f = lambda x, y: [x[0] * x[1] * y, mj.exp(x[1]) + y * y]  # noqa: E731
    jf = lambda x, y: [x[0] * x[1] * y, jnp.exp(x[1]) + y * y]  # noqa: E731
    args = ([1.5, -0.5], 2.0)
    for ours, theirs in ((mj.jacfwd, jax.jacfwd), (mj.jacrev, jax.jacrev)):
        for argnums in (0, 1, (0, 1)):
            got, want = ours(f, argnums)(*args), jax.jit(theirs(jf, argnums))(*args)
            assert jax.tree.structure(got) == jax.tree.structure(want)
            close(jax.tree.leaves(got), jax.tree.leaves(want))
    s = lambda p: p["a"] ** 3 * mj.log(p["b"][0]) + p["a"] * p["b"][1]  # noqa: E731
    js = lambda p: p["a"] ** 3 * jnp.log(p["b"][0]) + p["a"] * p["b"][1]  # noqa: E731
    p = {"a": 0.7, "b": (2.0, -1.0)}
    h, jh = mj.hessian(s)(p), jax.jit(jax.hessian(js))(p)
    assert jax.tree.structure(h) == jax.tree.structure(jh) and p == {"a": 0.7, "b": (2.0, -1.0)}
    close(jax.tree.leaves(h), jax.tree.leaves(jh))
    h = mj.hessian(lambda x, y: x[0] * y * y, argnums=(0, 1))([1.0, 2.0], 3.0)  # (d/dx, d/dy) of (x, y)
    assert h == ([([0.0, 0.0], 6.0), ([0.0, 0.0], 0.0)], ([6.0, 0.0], 2.0))


def test_jvp_follows_jax_signature_and_structure():
    f = lambda p: {"out": p["w"][0] * p["w"][1], "same": p["w"][0], "const": 2.0}  # noqa: E731
    p, t = {"w": [2.0, 3.0]}, {"w": [1.0, 0.5]}
    assert mj.jvp(f, (p,), (t,)) == ({"out": 6.0, "same": 2.0, "const": 2.0}, {"out": 4.0, "same": 1.0, "const": 0.0})
    with pytest.raises(ValueError, match="same structure"):
        mj.jvp(f, (p,), ({"w": [1.0]},))
    with pytest.raises(TypeError, match="tuples"):
        mj.jvp(f, p, t)
    with pytest.raises(TypeError, match="numbers"):
        mj.jvp(lambda x: x, (1.0,), ("1",))


# the lesson's MLP: its Hessian with respect to the last layer's weights ------------------------------
def test_lesson_mlp_hessian_of_the_last_layer_matches_jax():
    from models import mlp as jmlp
    from train.mlp import SIZES, XS, YS

    params = mj.init_mlp(3, SIZES, seed=1)

    def loss(w_last):
        return mj.squared_error(params[:-1] + [{"w": w_last, "b": params[-1]["b"]}], XS, YS)

    jparams = jmlp.from_microjax(params, jnp.float64)

    def jloss(w_last):
        return jmlp.squared_error(jparams[:-1] + [{"w": w_last, "b": jparams[-1]["b"]}], jnp.asarray(XS),
                                  jnp.asarray(YS))

    h = mj.hessian(loss)(params[-1]["w"])
    jh = jax.jit(jax.hessian(jloss))(jparams[-1]["w"])  # jitted: compiling once is quicker than running eagerly
    assert np.shape(h) == jh.shape == (1, 4, 1, 4)
    close(h, jh)
    v = [[1.0, -1.0, 0.5, 2.0]]
    close(mj.jvp(mj.grad(loss), (params[-1]["w"],), (v,))[1],
          jax.jit(lambda w, v: jax.jvp(jax.grad(jloss), (w,), (v,))[1])(jparams[-1]["w"], jnp.asarray(v)))


# make_jaxpr beside jax.make_jaxpr --------------------------------------------------------------------
def jax_primitives(jaxpr):
    """JAX's primitive names in order, stepping into wrappers such as jax.nn.relu's custom_jvp_call."""
    names = []
    for eqn in jaxpr.eqns:
        inner = [v for v in eqn.params.values() if hasattr(v, "eqns")]  # a Jaxpr or a ClosedJaxpr
        names.extend(jax_primitives(inner[0]) if inner else [eqn.primitive.name])
    return names


def reused(x, y):
    a = x * 2.0
    b = x + y
    return b * a - a / y


FUNCTIONS = [  # (microjax, JAX, arguments)
    (lambda x, w, b: mj.tanh(x * w + b), lambda x, w, b: jnp.tanh(x * w + b), (0.5, -1.0, 0.2)),
    (lambda w: (w * 2.0 - 2.0) ** 2, lambda w: (w * 2.0 - 2.0) ** 2, (3.0,)),
    (reused, reused, (0.5, 1.5)),
    (lambda x, y: mj.log(x * x + 1.0) - mj.sigmoid(y) * mj.relu(x - y) + x**0.5 + 2.0**y + x**y - mj.exp(-x),
     lambda x, y: jnp.log(x * x + 1.0) - jax.nn.sigmoid(y) * jax.nn.relu(x - y) + x**0.5 + 2.0**y + x**y - jnp.exp(-x),
     (1.3, 0.4)),
    (lambda x, y: mj.dot([x, y, 2.0], [y, 3.0, x]) + mj.sum([x, 1.5, y], y) + 1.0 / x,
     lambda x, y: x * y + y * 3.0 + 2.0 * x + (y + x + 1.5 + y) + 1.0 / x, (0.7, -0.2)),
]


@pytest.mark.parametrize("f, jf, args", FUNCTIONS)
def test_make_jaxpr_lists_the_primitives_jax_lists(f, jf, args):
    ours, theirs = mj.make_jaxpr(f)(*args), jax.make_jaxpr(jf)(*args)
    assert [e.primitive for e in ours.eqns] == jax_primitives(theirs.jaxpr)


def test_make_jaxpr_prints_what_jax_prints():
    for f, jf, args in FUNCTIONS[:3] + [(lambda x: mj.tanh(x * x), lambda x: jnp.tanh(x * x), (1.0,)),
                                         (lambda x: (x * x, x, 1.0), lambda x: (x * x, x, 1.0), (1.0,))]:
        assert str(mj.make_jaxpr(f)(*args)) == str(jax.make_jaxpr(jf)(*args))


def run_with_lax(jaxpr, args):
    """Evaluate our jaxpr's equations with JAX's own primitives."""
    env = dict(zip(jaxpr.invars, map(jnp.float64, args)))
    read = lambda a: env[a] if isinstance(a, str) else jnp.float64(a)  # noqa: E731
    for e in jaxpr.eqns:
        op = jax.lax.add if e.primitive == "add_any" else getattr(jax.lax, e.primitive)
        env[e.outvar] = op(*map(read, e.invars), **e.params)
    return [read(a) for a in jaxpr.outvars]


@pytest.mark.parametrize("f, jf, args", FUNCTIONS)
def test_jaxpr_of_grad_computes_jax_gradient(f, jf, args):
    argnums = tuple(range(len(args)))
    close(run_with_lax(mj.make_jaxpr(mj.grad(f, argnums))(*args), args), jax.grad(jf, argnums)(*args))


@pytest.mark.parametrize("f, jf, args", FUNCTIONS[:3])
def test_jaxpr_of_hessian_computes_jax_hessian(f, jf, args):
    argnums = tuple(range(len(args)))
    close(run_with_lax(mj.make_jaxpr(mj.hessian(f, argnums))(*args), args),
          jax.tree.leaves(jax.hessian(jf, argnums)(*args)))


def test_jaxpr_of_grad_shows_the_backward_pass():
    assert str(mj.make_jaxpr(mj.grad(lambda x: mj.tanh(x * x)))(1.0)) == """\
{ lambda ; a:f64[]. let
    b:f64[] = mul a a
    c:f64[] = tanh b
    d:f64[] = sub 1.0:f64[] c
    e:f64[] = add 1.0:f64[] c
    f:f64[] = mul d e
    g:f64[] = mul a f
    h:f64[] = mul a f
    i:f64[] = add_any g h
  in (i,) }"""


# no recursion: a 200,000-deep graph in every mode --------------------------------------------------
@pytest.mark.slow
def test_deep_graphs_differentiate_in_every_mode():
    n = 200_000

    def chain(x):
        for _ in range(n):
            x = x + 1.0
        return x

    def ladder(x):  # x + n x^2: the nested reverse pass sums n cotangents into x, a chain n deep to differentiate
        y = x
        for _ in range(n):
            y = y + x * x
        return y

    assert mj.jvp(chain, (0.0,), (1.0,)) == (float(n), 1.0)  # grad: tests/test_engine.py
    assert mj.grad(mj.grad(ladder))(0.5) == 2.0 * n


# domain errors, and the state after one -----------------------------------------------------------
@pytest.mark.parametrize("transform", [
    lambda f: mj.grad(mj.grad(f)), lambda f: lambda x: mj.jvp(f, (x,), (1.0,)), mj.hessian, mj.make_jaxpr,
    lambda f: mj.grad(lambda x: mj.jvp(f, (x,), (1.0,))[1]),
])
@pytest.mark.parametrize("fn, exc, words", [
    (lambda x: mj.log(x - 1.0), ValueError, ["log", "-1.0"]),
    (lambda x: 1.0 / (x * 0.0), ZeroDivisionError, ["div", "zero"]),
    (lambda x: (x - 2.0) ** 0.5, ValueError, ["pow", "-2.0", "0.5"]),
    (lambda x: (x - 2.0) ** mj.Value(1.5), ValueError, ["pow", "-2.0"]),
])
def test_domain_errors_name_the_op_and_the_value_in_every_mode(transform, fn, exc, words):
    with pytest.raises(exc) as info:
        transform(fn)(0.0)
    assert all(w in str(info.value) for w in words)
    assert mj.grad(lambda x: x * x)(3.0) == 6.0  # back at top level: floats again


def test_top_level_results_are_floats_shaped_like_the_inputs():
    x = [0.5, -1.0]
    f = lambda x: mj.tanh(x[0] * x[1]) * x[0]  # noqa: E731
    for result in (mj.grad(f)(x), mj.hessian(f)(x), mj.jacfwd(mj.grad(f))(x), mj.jvp(mj.grad(f), (x,), (x,))):
        assert all(type(leaf) is float for leaf in jax.tree.leaves(result))
    assert x == [0.5, -1.0]
    assert math.isclose(mj.grad(mj.grad(lambda x: x**4))(2.0), 48.0) and mj.grad(mj.grad(mj.grad(lambda x: x**4)))(2.0) == 48.0
