"""The differentiation transforms against JAX (float64): jvp, vjp, linearize, nested grad, hessian,
custom_jvp/custom_vjp, stop_gradient, and JAX's signatures (argnums, has_aux, keyword arguments) and
TypeErrors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import microjax as mj

from .helpers import BINARY, UNARY, _Jax, close, run_program



def finite(*trees):
    leaves = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(trees)])
    return bool(np.all(np.isfinite(leaves)) and np.all(np.abs(leaves) < 1e12))


# random expression graphs over every op, with a Value exponent and shared sub-expressions -------------
@settings(max_examples=20, deadline=None)
@given(leaves=st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=3, max_size=3),  # one shape: JAX compiles once
       direction=st.lists(st.floats(-1, 1, allow_subnormal=False), min_size=3, max_size=3),
       program=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 50), st.integers(0, 50)),
                        min_size=1, max_size=12))
@pytest.mark.slow
def test_random_graphs_forward_mode_hessian_hvp_and_third_order_match_jax(leaves, direction, program):
    n, v = len(leaves), direction
    f = lambda xs: run_program(program, xs, mj)  # noqa: E731
    jf = lambda xs: run_program(program, list(xs), _Jax)  # noqa: E731
    line = lambda t: f([x + t * d for x, d in zip(leaves, v)])  # noqa: E731  f along v, for the third derivative
    jline = lambda t: jf(jnp.asarray(leaves) + t * jnp.asarray(v))  # noqa: E731
    ours = (mj.jvp(f, (leaves,), (v,)), mj.hessian(f)(leaves), mj.jvp(mj.grad(f), (leaves,), (v,))[1],
            mj.grad(mj.grad(mj.grad(line)))(0.0))
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
    assert mj.jvp(f, (p,), (t,)) == ({"const": 2.0, "out": 6.0, "same": 2.0}, {"const": 0.0, "out": 4.0, "same": 1.0})
    assert mj.jvp(f, [p], [t]) == mj.jvp(f, (p,), (t,))  # lists as JAX takes them
    for bad in [((p,), ({"w": [1.0]},)), ((p,), (t, t)), (p, t), ((1.0,), ("1",)), ((1.0,), (1,))]:
        for jvp in (mj.jvp, jax.jvp):  # JAX's TypeErrors: structures, tuples, types of tangents
            with pytest.raises(TypeError):
                jvp(lambda *a: a[0], *bad)
    with pytest.raises(TypeError, match="same tree structure"):
        mj.jvp(f, (p,), ({"w": [1.0]},))


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
    assert mj.vjp(chain, 0.0)[1](1.0) == (1.0,) and mj.linearize(chain, 0.0)[1](2.0) == 2.0
    assert mj.grad(mj.grad(ladder))(0.5) == 2.0 * n
    assert mj.jit(chain)(0.0) == float(n) and mj.jit(mj.grad(chain))(0.0) == 1.0
    assert mj.vmap(chain)([0.0, 1.0]) == [float(n), n + 1.0]
    assert len(str(mj.make_jaxpr(chain)(0.0)).splitlines()) == n + 2


def test_top_level_results_are_floats_shaped_like_the_inputs():
    x = [0.5, -1.0]
    f = lambda x: mj.tanh(x[0] * x[1]) * x[0]  # noqa: E731
    for result in (mj.grad(f)(x), mj.hessian(f)(x), mj.jacfwd(mj.grad(f))(x), mj.jvp(mj.grad(f), (x,), (x,))):
        assert all(type(leaf) is float for leaf in jax.tree.leaves(result))
    assert x == [0.5, -1.0]
    assert math.isclose(mj.grad(mj.grad(lambda x: x**4))(2.0), 48.0) and mj.grad(mj.grad(mj.grad(lambda x: x**4)))(2.0) == 48.0


# vjp, linearize, stop_gradient -------------------------------------------------------------------
def test_vjp_and_linearize_as_jax():
    f = lambda p, y: {"a": p[0] * y, "b": mj.sin(p[1]) * p[0]}  # noqa: E731
    jf = lambda p, y: {"a": p[0] * y, "b": jnp.sin(p[1]) * p[0]}  # noqa: E731
    p, y = [1.5, -0.5], 2.0
    out, f_vjp = mj.vjp(f, p, y)
    jout, jf_vjp = jax.vjp(jf, p, y)
    ct = {"a": 0.3, "b": -1.2}
    for _ in range(2):  # f_vjp can be called again
        got, want = f_vjp(ct), jf_vjp(ct)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        close(jax.tree.leaves(got), jax.tree.leaves(want))
    close(jax.tree.leaves(out), jax.tree.leaves(jout))
    with pytest.raises(ValueError):  # a cotangent of another structure (JAX: ValueError too)
        f_vjp({"a": 1.0})
    out, f_jvp = mj.linearize(f, p, y)
    jout, jf_jvp = jax.linearize(jf, p, y)
    t = ([0.1, 0.2], -1.0)
    close(jax.tree.leaves(f_jvp(*t)), jax.tree.leaves(jf_jvp(*t)))
    close(jax.tree.leaves(mj.jvp(f, (p, y), t)[1]), jax.tree.leaves(f_jvp(*t)))
    _, g_vjp, aux = mj.vjp(lambda x: (x * x, {"seen": x}), 3.0, has_aux=True)
    assert g_vjp(1.0) == (6.0,) and aux == {"seen": 3.0}


def test_vjp_of_a_vjp_and_linearize_inside_grad():
    f = lambda x: mj.sin(x) * x  # noqa: E731
    jf = lambda x: jnp.sin(x) * x  # noqa: E731
    ours = mj.grad(lambda x: mj.vjp(f, x)[1](1.0)[0])(0.7)  # the second derivative, by reverse over reverse
    close(ours, jax.grad(lambda x: jax.vjp(jf, x)[1](1.0)[0])(0.7))
    close(mj.grad(lambda x: mj.linearize(f, x)[1](1.0))(0.7), jax.grad(jax.grad(jf))(0.7))
    _, top = mj.vjp(f, 0.7)  # traced at top level, its cotangent differentiated later: linear in it
    close(mj.grad(lambda c: top(c)[0] * c)(2.0), 2 * 2.0 * jax.grad(jf)(0.7))


def test_stop_gradient_as_jax():
    f = lambda x: mj.stop_gradient(x * x) * x + mj.stop_gradient({"k": [x]})["k"][0]  # noqa: E731
    jf = lambda x: jax.lax.stop_gradient(x * x) * x + jax.lax.stop_gradient({"k": [x]})["k"][0]  # noqa: E731
    for transform, jtransform in ((mj.grad, jax.grad), (lambda f: mj.grad(mj.grad(f)), lambda f: jax.grad(jax.grad(f))),
                                  (lambda f: mj.jit(mj.grad(f)), lambda f: jax.jit(jax.grad(f)))):
        close(transform(f)(1.5), jtransform(jf)(1.5))
    assert mj.jvp(f, (1.5,), (1.0,)) == pytest.approx(tuple(map(float, jax.jvp(jf, (1.5,), (1.0,)))), rel=1e-12)


# JAX's signatures: argnums, has_aux, keyword arguments, and its TypeErrors ---------------------------
def test_argnums_has_aux_and_keyword_arguments_as_jax():
    f = lambda x, y, scale=1.0: (x * y * scale, {"y": y})  # noqa: E731
    for ours, theirs in ((mj.grad, jax.grad), (mj.value_and_grad, jax.value_and_grad), (mj.jacrev, jax.jacrev),
                         (mj.jacfwd, jax.jacfwd), (mj.hessian, jax.hessian)):
        for argnums in (0, 1, (0, 1), -1, [1, 0]):
            got = ours(f, argnums=argnums, has_aux=True)(2.0, 3.0, scale=0.5)
            want = theirs(f, argnums=argnums, has_aux=True)(2.0, 3.0, scale=0.5)
            assert jax.tree.structure(got) == jax.tree.structure(want), (ours, argnums)
            close(jax.tree.leaves(got), jax.tree.leaves(want))
    assert mj.value_and_grad(lambda x: 3.0)(1.0) == (3.0, 0.0)  # a constant output: zero gradient
    assert mj.grad(lambda p: p["a"] * 2.0)({"a": 1.0, "b": None}) == {"a": 2.0, "b": None}  # None: no leaves


BAD_CALLS = [  # each refused by JAX with a TypeError; microjax's TypeError says the same
    ("argnums out of range", lambda g: g.grad(lambda x: x, argnums=3)(1.0), "requires at least 4 positional"),
    ("argnums not an int", lambda g: g.grad(lambda x: x, argnums="a")(1.0), "cannot be interpreted as an integer"),
    ("integer input", lambda g: g.grad(lambda x: x * 2.0)(1), "real"),
    ("bool input", lambda g: g.grad(lambda x: x * 2.0)(True), "real"),
    ("string input", lambda g: g.grad(lambda x: x)("a"), "not a valid JAX type"),
    ("integer input to jacfwd", lambda g: g.jacfwd(lambda x: x)(1), "real"),
    ("a tuple output", lambda g: g.grad(lambda x: (x, x))(1.0), "scalar-output"),
    ("an integer output", lambda g: g.grad(lambda x: 3)(1.0), "real-valued outputs"),
    ("has_aux without a pair", lambda g: g.grad(lambda x: x * x, has_aux=True)(3.0), "two-element tuple"),
]


@pytest.mark.parametrize("name, call, words", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_what_jax_refuses_is_a_type_error_saying_so(name, call, words):
    with pytest.raises(TypeError):
        call(jax)
    with pytest.raises(TypeError, match=words):
        call(mj)


