"""jit and vmap beside JAX's: jit traces once per input structure and runs the traced program after;
vmap traces once and maps over lists; both compose with the differentiation transforms."""

import jax
import jax.numpy as jnp
import pytest

import microjax as mj
from microjax.jaxpr import stage

from .helpers import tree_allclose

REL = 1e-12


def counted(lib):
    calls = []

    def f(x, n=2.0):
        calls.append(1)  # a side effect: it runs when f is traced, not when the traced program runs
        return lib.tanh(x["w"][0] * x["b"]) * n + sum(x["w"])

    return f, calls


def test_jit_traces_once_per_structure_and_static_value_as_jax():
    calls_of = {}
    for lib, jit in ((mj, mj.jit), (jnp, jax.jit)):
        f, calls = counted(lib)
        jitted, seen = jit(f, static_argnums=1), []
        for x, n in [({"w": [1.0, 2.0], "b": 0.5}, 2.0), ({"w": [3.0, -1.0], "b": 0.1}, 2.0),  # new values: no
                     ({"b": 0.1, "w": [3.0, -1.0]}, 2.0),  # the same keys in another order: no
                     ({"w": [1.0, 2.0, 3.0], "b": 0.5}, 2.0),  # a longer list: a new structure
                     ({"w": [1.0, 2.0], "b": 0.5}, 3.0),  # a new static value
                     ({"w": [1.0, 2.0], "b": 0.5}, 2.0)]:  # both seen before: no
            out = jitted(x, n)
            seen.append(len(calls))
            assert out == pytest.approx(float(counted(jnp)[0](x, n)), rel=REL)
        calls_of[lib.__name__] = seen
        assert jitted._cache_size() == 3
    assert calls_of["microjax"] == calls_of["jax.numpy"] == [1, 1, 1, 2, 3, 3]


def test_jit_refuses_what_jax_refuses():
    for jit in (mj.jit, jax.jit):
        with pytest.raises(ValueError):
            jit(lambda x, l: x, static_argnums=1)(1.0, [1])  # unhashable static argument
        with pytest.raises(ValueError):
            jit(lambda x: x, static_argnums=3)(1.0)
        with pytest.raises(TypeError):
            jit(lambda x: x)("a")


def test_jit_keyword_arguments_and_closures_over_an_enclosing_transform():
    assert mj.jit(lambda x, *, scale: x * scale)(2.0, scale=3.0) == 6.0
    f = lambda x: mj.jit(lambda y: x * y * y)(2.0)  # noqa: E731  closes over grad's traced x
    jf = lambda x: jax.jit(lambda y: x * y * y)(2.0)  # noqa: E731
    assert mj.grad(f)(3.0) == float(jax.grad(jf)(3.0)) == 4.0
    assert mj.grad(mj.grad(lambda x: mj.jit(lambda y: x * x * y)(2.0)))(3.0) == 4.0


@pytest.mark.slow
def test_the_compiled_program_and_the_interpreter_give_the_same_floats():
    from bench.engine_cases import gpt_first_step
    from models import gpt_scalar

    params, tokens, targets, config = gpt_first_step()
    staged = stage(mj.value_and_grad(gpt_scalar.loss), (params, tokens[:3], targets[:3], config), {}, (1, 2, 3))
    compiled = mj.jit.__globals__["Compiled"](staged)
    leaves = mj.tree_leaves(params)
    assert compiled(leaves) == compiled.out_tree.unflatten(compiled.interpret(leaves))  # bit for bit
    value, grads = compiled(leaves)
    eager_value, eager_grads = mj.value_and_grad(gpt_scalar.loss)(params, tokens[:3], targets[:3], config)
    assert value == pytest.approx(eager_value, rel=REL)
    tree_allclose(grads, eager_grads, rtol=1e-9, atol=1e-15)


# vmap -------------------------------------------------------------------------------------------------
def test_vmap_maps_over_lists_as_jax_over_a_leading_axis():
    f = lambda p, x, k=1.0: {"y": mj.tanh(p["w"] * x["a"] + p["b"]) * k, "z": x["b"] - p["b"]}  # noqa: E731
    jf = lambda p, x, k=1.0: {"y": jnp.tanh(p["w"] * x["a"] + p["b"]) * k, "z": x["b"] - p["b"]}  # noqa: E731
    params, xs = {"w": 0.7, "b": -0.2}, [{"a": 1.0, "b": 2.0}, {"a": -0.5, "b": 0.0}, {"a": 3.0, "b": 1.0}]
    jxs = jax.tree.map(lambda *v: jnp.asarray(v), *xs)
    ours = mj.vmap(f, in_axes=(None, 0))(params, xs)
    theirs = jax.vmap(jf, in_axes=(None, 0))(params, jxs)
    assert ours == [f(params, x) for x in xs]  # a list of outputs, one per example
    tree_allclose(ours, [jax.tree.map(lambda a: a[i], theirs) for i in range(3)], rtol=REL)
    prefix = mj.vmap(f, in_axes=({"w": None, "b": 0}, 0))({"w": 0.7, "b": [0.1, 0.2, 0.3]}, xs)
    assert prefix == [f({"w": 0.7, "b": b}, x) for b, x in zip([0.1, 0.2, 0.3], xs)]
    assert mj.vmap(f, in_axes=(None, 0))(params, xs, k=[1.0, 2.0, 3.0])[2] == f(params, xs[2], 3.0)  # kwargs: axis 0
    assert mj.vmap(lambda x: 2.0, out_axes=None)([1.0, 2.0]) == 2.0 and mj.vmap(lambda x: 2.0)([1.0, 2.0]) == [2.0, 2.0]
    nested = mj.vmap(mj.vmap(lambda a, b: a * b), in_axes=(0, None))([[1.0, 2.0], [3.0, 4.0]], [10.0, 100.0])
    assert nested == [[10.0, 200.0], [30.0, 400.0]]


def test_vmap_traces_once_and_shared_work_is_done_once():
    calls = []
    f = lambda w, x: calls.append(1) or mj.exp(w) * x  # noqa: E731
    assert mj.vmap(f, in_axes=(None, 0))(0.0, [1.0, 2.0, 3.0, 4.0, 5.0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(calls) == 1
    jaxpr = mj.make_jaxpr(mj.vmap(lambda w, x: mj.exp(w) * x, in_axes=(None, 0)))(0.0, [1.0, 2.0])
    assert [e.primitive for e in jaxpr.eqns] == ["exp", "mul", "mul"]  # exp once, the product per example


@pytest.mark.parametrize("call", [
    lambda v: v(lambda x, y: x + y)([1.0, 2.0, 3.0], [1.0, 2.0]),  # inconsistent sizes
    lambda v: v(lambda x: x, in_axes=None)([1.0, 2.0]),  # nothing mapped
    lambda v: v(lambda x, y: x, in_axes=(0,))([1.0], [1.0]),  # an in_axes entry per argument
    lambda v: v(lambda x: x)(1.0),  # a number has no axis to map
    lambda v: v(lambda x: x, out_axes=None)([1.0, 2.0]),  # a mapped output with out_axes None
])
def test_vmap_refuses_what_jax_refuses_with_a_value_error(call):
    with pytest.raises(ValueError):
        call(_jax_vmap)
    with pytest.raises(ValueError):
        call(mj.vmap)


def _jax_vmap(f, **kw):
    vm = jax.vmap(f, **kw)
    return lambda *args: vm(*(jnp.asarray(a) for a in args))


# the lesson MLP: per-example gradients, and the gradient of a vmapped mean ------------------------------
@pytest.mark.slow
def test_per_example_gradients_of_the_lesson_mlp_as_jax():
    from models import mlp as jmlp
    from train.mlp import SIZES, XS, YS

    params = mj.init_mlp(3, SIZES, seed=1)
    loss = lambda p, x, y: (mj.mlp(p, x) - y) ** 2  # noqa: E731
    per_example = mj.vmap(mj.grad(loss), in_axes=(None, 0, 0))(params, XS, YS)
    tree_allclose(per_example, [mj.grad(loss)(params, x, y) for x, y in zip(XS, YS)], rtol=REL)
    jparams = jmlp.from_microjax(params, jnp.float64)
    jloss = lambda p, x, y: (jmlp.apply(p, x)[0] - y) ** 2  # noqa: E731
    theirs = jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0))(jparams, jnp.asarray(XS), jnp.asarray(YS))
    for i, g in enumerate(per_example):
        tree_allclose(jmlp.from_microjax(g), jax.tree.map(lambda a: a[i], theirs), rtol=1e-9, atol=1e-14)
    mean = lambda p: mj.sum(mj.vmap(loss, in_axes=(None, 0, 0))(p, XS, YS)) / len(XS)  # noqa: E731
    loop = lambda p: mj.sum([loss(p, x, y) for x, y in zip(XS, YS)]) / len(XS)  # noqa: E731
    tree_allclose(mj.grad(mean)(params), mj.grad(loop)(params), rtol=1e-12)
    tree_allclose(mj.jit(mj.grad(mean))(params), mj.grad(loop)(params), rtol=1e-12)
