"""make_jaxpr beside jax.make_jaxpr: abstract tracing (no values, so a Python `if` is JAX's error) and
the same printed text for a function, its grad and its jvp; the remaining differences, checked."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import microjax as mj

MJ = types.SimpleNamespace(grad=mj.grad, jvp=mj.jvp, hessian=mj.hessian, tanh=mj.tanh, sin=mj.sin, cos=mj.cos,
                           exp=mj.exp, log=mj.log, sqrt=mj.sqrt, maximum=mj.maximum, minimum=mj.minimum,
                           where=mj.where, sigmoid=mj.sigmoid, relu=mj.relu, stop_gradient=mj.stop_gradient)
JX = types.SimpleNamespace(grad=jax.grad, jvp=jax.jvp, hessian=jax.hessian, tanh=jnp.tanh, sin=jnp.sin, cos=jnp.cos,
                           exp=jnp.exp, log=jnp.log, sqrt=jnp.sqrt, maximum=jnp.maximum, minimum=jnp.minimum,
                           where=jnp.where, sigmoid=jax.nn.sigmoid, relu=jax.nn.relu,
                           stop_gradient=jax.lax.stop_gradient)


def reused(x, y):
    a = x * 2.0
    b = x + y
    return b * a - a / y


SAME = [  # (name, function of a library, arguments): printed exactly as jax.make_jaxpr prints them
    ("neuron", lambda m: lambda x, w, b: m.tanh(x * w + b), (0.5, -1.0, 0.2)),
    ("one weight", lambda m: lambda w: (w * 2.0 - 2.0) ** 2, (3.0,)),
    ("reused", lambda m: reused, (0.5, 1.5)),
    ("tuple out", lambda m: lambda x: (x * x, x, 1.0), (1.0,)),
    ("unused", lambda m: lambda x: (x * 2, x)[1], (1.0,)),
    ("dict keys sorted", lambda m: lambda p: p["b"] * p["a"], ({"b": 1.0, "a": 2.0},)),
    ("keyword", lambda m: lambda x, y=1.0: x * y, (1.0,)),
    ("grad tanh", lambda m: m.grad(lambda x: m.tanh(x * x)), (1.0,)),
    ("grad one weight", lambda m: m.grad(lambda w: (w * 2.0 - 2.0) ** 2), (3.0,)),
    ("grad sin / y", lambda m: m.grad(lambda x, y: x * y + m.sin(x) / y, argnums=(0, 1)), (1.0, 2.0)),
    ("grad of many ops", lambda m: m.grad(lambda x: m.exp(x) * m.log(x) + m.cos(x) - x**3 + m.sqrt(x) + abs(x)), (1.0,)),
    ("grad sub", lambda m: m.grad(lambda x: 1.0 - x + x * 3.0 - x), (1.0,)),
    ("grad div", lambda m: m.grad(lambda x, y: x / y + 2.0 / x, (0, 1)), (1.0, 2.0)),
    ("grad powers", lambda m: m.grad(lambda x: x**2 + x**3 + x**1 + x**-1 + x**0), (1.0,)),
    ("grad sigmoid sqrt", lambda m: m.grad(lambda x: m.sigmoid(x) + m.sqrt(x)), (1.0,)),
    ("grad neg", lambda m: m.grad(lambda x: -x * x), (1.0,)),
    ("grad stop_gradient", lambda m: m.grad(lambda x: m.stop_gradient(x) * x), (1.0,)),
    ("grad max min", lambda m: m.grad(lambda x: m.maximum(x, 2.0) + m.minimum(x, x * x)), (1.0,)),
    ("grad identity", lambda m: m.grad(lambda x: x), (1.0,)),
    ("grad constant shift", lambda m: m.grad(lambda x: x + 1.0), (1.0,)),
    ("grad reused", lambda m: m.grad(reused, (0, 1)), (0.5, 1.5)),
    ("jvp tanh", lambda m: lambda x, t: m.jvp(lambda x: m.tanh(x * x), (x,), (t,)), (1.0, 1.0)),
    ("jvp sub", lambda m: lambda x, t: m.jvp(lambda x: 1.0 - x + x * 3.0 - x, (x,), (t,)), (1.0, 1.0)),
    ("jvp max", lambda m: lambda x, t: m.jvp(lambda x: m.maximum(x, 1.0), (x,), (t,)), (1.0, 1.0)),
    ("grad grad", lambda m: m.grad(m.grad(lambda x: m.sin(x) * x)), (1.0,)),
    ("jvp of grad", lambda m: lambda x, t: m.jvp(m.grad(lambda x: m.sin(x) * x), (x,), (t,)), (1.0, 1.0)),
]


@pytest.mark.parametrize("name, make, args", SAME, ids=[s[0] for s in SAME])
def test_make_jaxpr_prints_what_jax_prints(name, make, args):
    assert str(mj.make_jaxpr(make(MJ))(*args)) == str(jax.make_jaxpr(make(JX))(*args))


def jax_primitives(jaxpr):
    """JAX's primitive names in order, stepping into wrappers (jax.nn.relu's custom_jvp_call, jnp.where's
    jit) and leaving out its dtype conversions, which are no-ops in float64."""
    names = []
    for eqn in jaxpr.eqns:
        inner = [v for v in eqn.params.values() if hasattr(v, "eqns") or hasattr(v, "jaxpr")]
        if inner:
            names.extend(jax_primitives(getattr(inner[0], "jaxpr", inner[0])))
        elif eqn.primitive.name != "convert_element_type":
            names.append(eqn.primitive.name)
    return names


DIFFERENT = [  # where JAX's text has wrappers or conversions microjax's does not: the same primitives
    ("relu", lambda m: m.grad(lambda x: m.relu(x) * 2.0), (1.0,)),
    ("where", lambda m: lambda x: m.where(x > 0, x, 2.0), (1.0,)),
    ("pow", lambda m: m.grad(lambda x, y: x**y + 2.0**x + x**2.5), (1.0, 2.0)),
]


@pytest.mark.parametrize("name, make, args", DIFFERENT, ids=[d[0] for d in DIFFERENT])
def test_where_the_text_differs_the_equations_are_jaxs(name, make, args):
    ours, theirs = mj.make_jaxpr(make(MJ))(*args), jax.make_jaxpr(make(JX))(*args)
    assert str(ours) != str(theirs)
    assert [e.primitive for e in ours.eqns] == jax_primitives(theirs.jaxpr)


def run_with_lax(jaxpr, args):
    """Evaluate our jaxpr's equations with JAX's own primitives."""
    env = dict(zip(jaxpr.invars, map(jnp.float64, args)))
    read = lambda a: env[a] if isinstance(a, str) else (a if type(a) is bool else jnp.float64(a))  # noqa: E731
    for e in jaxpr.eqns:
        op = jax.lax.add if e.primitive == "add_any" else getattr(jax.lax, e.primitive)
        env[e.outvar] = op(*map(read, e.invars), **e.params)
    return [read(a) for a in jaxpr.outvars]


FUNCTIONS = [  # (microjax, JAX, arguments)
    (lambda x, w, b: mj.tanh(x * w + b), lambda x, w, b: jnp.tanh(x * w + b), (0.5, -1.0, 0.2)),
    (reused, reused, (0.5, 1.5)),
    (lambda x, y: mj.log(x * x + 1.0) - mj.sigmoid(y) * mj.relu(x - y) + x**0.5 + 2.0**y + x**y - mj.exp(-x),
     lambda x, y: jnp.log(x * x + 1.0) - jax.nn.sigmoid(y) * jax.nn.relu(x - y) + x**0.5 + 2.0**y + x**y - jnp.exp(-x),
     (1.3, 0.4)),
    (lambda x, y: mj.dot([x, y, 2.0], [y, 3.0, x]) + mj.sum([x, 1.5, y], y) + 1.0 / x + mj.maximum(x, y) * abs(y),
     lambda x, y: x * y + y * 3.0 + 2.0 * x + (y + x + 1.5 + y) + 1.0 / x + jnp.maximum(x, y) * abs(y), (0.7, -0.2)),
]


@pytest.mark.slow
@pytest.mark.parametrize("f, jf, args", FUNCTIONS)
def test_jaxprs_of_f_grad_and_hessian_compute_jaxs_numbers_when_run_by_jax(f, jf, args):
    nums = tuple(range(len(args)))
    np.testing.assert_allclose(run_with_lax(mj.make_jaxpr(f)(*args), args), [jf(*args)], rtol=1e-12)
    np.testing.assert_allclose(run_with_lax(mj.make_jaxpr(mj.grad(f, nums))(*args), args),
                               jax.grad(jf, nums)(*args), rtol=1e-12)
    np.testing.assert_allclose(run_with_lax(mj.make_jaxpr(mj.hessian(f, nums))(*args), args),
                               np.ravel(jax.hessian(jf, nums)(*args)), rtol=1e-10, atol=1e-14)


# abstract tracing: no values -------------------------------------------------------------------------
def test_a_python_branch_on_a_traced_value_is_jaxs_error_pointing_to_where_and_cond():
    f = lambda x: x if x > 0 else -x  # noqa: E731
    with pytest.raises(jax.errors.TracerBoolConversionError):
        jax.make_jaxpr(f)(1.0)
    for staged, x in ((mj.make_jaxpr(f), 1.0), (mj.jit(f), 1.0), (mj.vmap(f), [1.0]), (mj.jit(mj.grad(f)), 1.0)):
        with pytest.raises(mj.TracerBoolConversionError, match=r"microjax\.where.*microjax\.cond") as info:
            staged(x)
        assert isinstance(info.value, TypeError)  # as JAX's: a ConcretizationTypeError, a TypeError
    assert [str(e) for e in mj.make_jaxpr(lambda x: mj.where(x > 0, x, -x))(1.0).eqns] == [
        "b:bool[] = gt a 0.0:f64[]", "c:f64[] = neg a", "d:f64[] = select_n b c a"]
    assert mj.grad(f)(-2.0) == -1.0  # under grad the value is known, as in JAX
    for f in (lambda x: float(x), lambda x: x.data, lambda x: int(x)):
        with pytest.raises(mj.ConcretizationTypeError):
            mj.make_jaxpr(f)(1.0)


def test_cond_traces_both_branches_under_staging_and_runs_one_on_known_values():
    f = lambda x: mj.cond(x > 0, lambda v: v * v, lambda v: -v, x)  # noqa: E731
    jf = lambda x: jax.lax.cond(x > 0, lambda v: v * v, lambda v: -v, x)  # noqa: E731
    for x in (1.5, -2.0):
        assert mj.jit(f)(x) == float(jax.jit(jf)(x)) and f(x) == float(jf(x))
        assert mj.jit(mj.grad(f))(x) == mj.grad(f)(x) == float(jax.grad(jf)(x))
    assert [e.primitive for e in mj.make_jaxpr(f)(1.0).eqns] == ["gt", "mul", "neg", "select_n"]
    with pytest.raises(TypeError, match="same pytree structure"):
        mj.make_jaxpr(lambda x: mj.cond(x > 0, lambda v: v, lambda v: (v, v), x))(1.0)


def test_a_tracer_kept_after_its_trace_is_jaxs_unexpected_tracer_error():
    kept = []
    mj.make_jaxpr(lambda x: kept.append(x) or x)(1.0)
    with pytest.raises(mj.UnexpectedTracerError):
        mj.jit(lambda y: y * kept[0])(2.0)


def test_bool_inputs_and_a_closed_over_tracer_print_as_jax_does():
    f = lambda p, x: mj.where(p, x, 2.0 * x)  # noqa: E731
    assert str(mj.make_jaxpr(f)(True, 1.0)) == str(
        jax.make_jaxpr(lambda p, x: jax.lax.select(p, x, 2.0 * x))(True, 1.0))
    inner = mj.make_jaxpr(lambda x: mj.jit(lambda y: x * y)(2.0))(1.0)
    assert str(inner) == "{ lambda ; a:f64[]. let b:f64[] = mul a 2.0:f64[] in (b,) }"  # jit inlined
