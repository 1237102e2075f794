"""JAX's semantics on what microjax already had, each against JAX's same call: equality compares values,
float() and bool() as on JAX's tracers, IEEE float64 numbers with JAX's derivatives, and JAX's
debug_nans/debug_infs switches."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import microjax as mj
from microjax import Value, grad, value_and_grad

REL = 1e-9


# JAX's semantics on what microjax already had ---------------------------------------------------------
def test_equality_compares_values_so_a_branch_on_it_goes_as_in_jax():
    f = lambda x: x * 10.0 if x == 1.0 else x * x  # noqa: E731
    assert value_and_grad(f)(1.0) == (10.0, 10.0) == tuple(map(float, jax.value_and_grad(f)(1.0)))
    g = lambda x, y: x * y if x != y else x  # noqa: E731
    assert grad(g)(2.0, 2.0) == 1.0 == float(jax.grad(g)(2.0, 2.0))
    a, b = Value(2.0), Value(2.0)
    assert a == b and a == 2.0 and not a != b and len({a: 1, b: 2}) == 2  # equal, yet hashed by identity


def test_float_of_a_traced_value_is_refused_and_bool_of_a_comparison_is_not_as_on_jax_tracers():
    with pytest.raises(TypeError):  # JAX: ConcretizationTypeError, a TypeError
        jax.grad(lambda x: float(x) * x)(2.0)
    with pytest.raises(mj.ConcretizationTypeError):
        grad(lambda x: float(x) * x)(2.0)
    assert grad(lambda x: x * 2.0 if bool(x > 1.0) else x)(2.0) == 2.0 == float(
        jax.grad(lambda x: x * 2.0 if bool(x > 1.0) else x)(2.0))
    assert grad(lambda x: x * int(x))(2.5) == 2.0 == float(jax.grad(lambda x: x * int(x))(2.5))


IEEE = [  # (function, where): values and derivatives where plain Python raises or JAX has inf/nan
    (mj.exp, jnp.exp, 1000.0), (mj.log, jnp.log, 0.0), (mj.log, jnp.log, -1.0), (lambda x: 1.0 / x, lambda x: 1.0 / x, 0.0),
    (lambda x: x / x, lambda x: x / x, 0.0), (mj.relu, jax.nn.relu, math.nan), (lambda x: x**0.5, lambda x: x**0.5, 0.0),
    (mj.sqrt, jnp.sqrt, -1.0), (mj.sin, jnp.sin, math.inf), (lambda x: x**-2, lambda x: x**-2, 0.0),
    (lambda x: (-8.0) ** x, lambda x: (-8.0) ** x, 0.5), (lambda x: x**3, lambda x: x**3, 1e200),
    (lambda x: mj.maximum(x, math.nan), lambda x: jnp.maximum(x, jnp.nan), 1.0), (mj.sigmoid, jax.nn.sigmoid, -1000.0),
]


@pytest.mark.parametrize("op, jop, x", IEEE)
def test_ieee_values_and_jax_derivatives_where_python_would_raise(op, jop, x):
    """Inside a transform, as JAX's float64 (plain Python floats outside raise, for both libraries)."""
    ours = [value_and_grad(op)(x)[0], mj.jit(op)(x), grad(op)(x), grad(grad(op))(x)]
    x64 = jnp.float64(x)
    theirs = [float(f(x64)) for f in (jop, jax.jit(jop), jax.grad(jop), jax.grad(jax.grad(jop)))]
    np.testing.assert_allclose(ours, theirs, rtol=REL)  # nan == nan and inf == inf here


@pytest.fixture
def debug_switch():
    yield mj.config.update
    mj.config.update("debug_nans", False)
    mj.config.update("debug_infs", False)


@pytest.mark.parametrize("fn, switch, words", [
    (lambda x: mj.log(x - 1.0), "debug_nans", ["log", "-1.0", "nan"]),
    (lambda x: x / (x - 0.0 * x - 0.0 - x), "debug_nans", ["div", "0.0, 0.0"]),
    (lambda x: 1.0 / (x * 0.0), "debug_infs", ["div", "1.0, 0.0", "inf"]),
    (lambda x: (x - 2.0) ** 0.5, "debug_nans", ["pow", "-2.0", "0.5"]),
    (lambda x: (x - 2.0) ** Value(1.5), "debug_nans", ["pow", "-2.0"]),
    (lambda x: mj.exp(x + 1000.0), "debug_infs", ["exp", "1000.0"]),
])
def test_the_debug_switches_raise_at_the_op_naming_it_and_its_operands(debug_switch, fn, switch, words):
    value, slope = value_and_grad(fn)(0.0)
    assert not (math.isfinite(value) and math.isfinite(slope))  # switched off: IEEE numbers, no error
    debug_switch(switch, True)
    for transform, x in ((grad, 0.0), (mj.jit, 0.0), (mj.vmap, [0.0])):  # each runs the forward pass
        with pytest.raises(FloatingPointError) as info:
            transform(fn)(x)
        assert all(w in str(info.value) for w in words), str(info.value)
    debug_switch(switch, False)
    value_and_grad(fn)(0.0)  # off again


def test_the_switches_have_jax_names():
    mj.config.update("jax_debug_nans", False)  # JAX's own spelling works too
    with pytest.raises(AttributeError, match="Unrecognized config option"):
        mj.config.update("debug_everything", True)
