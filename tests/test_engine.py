"""The scalar engine against jax.grad (float64) over every op, against micrograd, and on its own
promises: purity, depth, reuse, and each primitive's recipe (JAX's semantics: tests/test_semantics.py)."""

import copy
import inspect
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import microjax as mj
from microjax import Value, grad, value_and_grad

from .helpers import BINARY, ROOT, UNARY, _Jax, run_program

REL = 1e-9  # values and gradients, float64 against float64


# micrograd's two published test expressions, written once for any engine's relu ------------------
def sanity_check(x, relu):
    z = 2 * x + 2 + x
    q = relu(z) + z * x
    h = relu(z * z)
    return h + q + q * x


def more_ops(a, b, relu):
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + relu(b + a)
    d = d + 3 * d + relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    return g + 10.0 / f


def test_micrograd_published_expressions_match_jax():
    v, g = value_and_grad(sanity_check)(-4.0, mj.relu)
    jv, jg = jax.value_and_grad(sanity_check)(-4.0, jax.nn.relu)
    assert v == pytest.approx(float(jv), rel=REL) and g == pytest.approx(float(jg), rel=REL)
    v, g = value_and_grad(more_ops, argnums=(0, 1))(-4.0, 2.0, mj.relu)
    jv, jg = jax.value_and_grad(more_ops, argnums=(0, 1))(-4.0, 2.0, jax.nn.relu)
    assert v == pytest.approx(float(jv), rel=REL)
    assert g == pytest.approx(tuple(float(x) for x in jg), rel=REL)
    assert g[0] == pytest.approx(138.83381924198252, rel=1e-12)  # micrograd's published numbers
    assert g[1] == pytest.approx(645.5772594752186, rel=1e-12)


def test_same_values_and_gradients_as_the_micrograd_package():
    from micrograd.engine import Value as MgValue

    for fn, args in ((sanity_check, (-4.0,)), (more_ops, (-4.0, 2.0))):
        mg_args = [MgValue(a) for a in args]
        out = fn(*mg_args, lambda v: v.relu())
        out.backward()
        v, g = value_and_grad(fn, argnums=tuple(range(len(args))))(*args, mj.relu)
        assert v == pytest.approx(out.data, rel=1e-12)
        assert g == pytest.approx(tuple(a.grad for a in mg_args), rel=1e-12)


def test_no_gradients_to_zero_unlike_micrograd():
    """The lesson's bug: micrograd's second backward() without zeroing doubles the gradient."""
    from micrograd.engine import Value as MgValue

    a = MgValue(3.0)
    b = a * a
    b.backward()
    b.backward()
    assert a.grad == 12.0  # 6 + 6: piled up
    df = grad(lambda a: a * a)
    assert df(3.0) == df(3.0) == 6.0


# random expression graphs with shared sub-expressions, over every op --------------------------------
PROGRAMS = st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 50), st.integers(0, 50)),
                    min_size=1, max_size=25)


# XLA on the CPU flushes subnormal numbers to zero, which Python floats do not: leave them out.
@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(leaves=st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=1, max_size=4), program=PROGRAMS)
def test_random_expression_graphs_match_jax(leaves, program):
    v, g = value_and_grad(lambda xs: run_program(program, xs, mj))(leaves)
    assume(math.isfinite(v) and abs(v) < 1e12 and all(math.isfinite(x) and abs(x) < 1e12 for x in g))
    jv, jg = jax.value_and_grad(lambda xs: run_program(program, list(xs), _Jax))(jnp.asarray(leaves))
    np.testing.assert_allclose(v, float(jv), rtol=REL, atol=1e-12)
    np.testing.assert_allclose(g, np.asarray(jg), rtol=REL, atol=1e-12 * max(1.0, np.max(np.abs(g))))


OPS = [  # (name, microjax, JAX)
    ("exp", mj.exp, jnp.exp), ("log", mj.log, jnp.log), ("tanh", mj.tanh, jnp.tanh), ("relu", mj.relu, jax.nn.relu),
    ("sigmoid", mj.sigmoid, jax.nn.sigmoid), ("sqrt", mj.sqrt, jnp.sqrt), ("sin", mj.sin, jnp.sin),
    ("cos", mj.cos, jnp.cos), ("abs", abs, jnp.abs), ("x**2.5", lambda x: x**2.5, lambda x: x**2.5),
    ("2**x", lambda x: 2.0**x, lambda x: 2.0**x), ("x**x", lambda x: x**x, lambda x: x**x),
    ("3/x", lambda x: 3.0 / x, lambda x: 3.0 / x), ("1-x", lambda x: 1.0 - x, lambda x: 1.0 - x),
    ("max", lambda x: mj.maximum(x, 1.0), lambda x: jnp.maximum(x, 1.0)),
    ("min", lambda x: mj.minimum(x, 1.0), lambda x: jnp.minimum(x, 1.0)),
    ("where", lambda x: mj.where(x > 1.0, x * x, -x), lambda x: jnp.where(x > 1.0, x * x, -x)),
]


@pytest.mark.parametrize("name, op, jop", OPS, ids=[o[0] for o in OPS])
def test_every_op_has_jax_value_and_first_and_second_derivatives(name, op, jop):
    for x in (0.3, 1.0, 1.7, -0.6):
        if name in ("log", "sqrt", "x**2.5", "x**x") and x < 0:
            continue
        ours = (op(x), grad(op)(x), grad(grad(op))(x))
        theirs = (jop(x), jax.grad(jop)(x), jax.grad(jax.grad(jop))(x))
        np.testing.assert_allclose(ours, np.asarray(theirs, np.float64), rtol=REL, atol=1e-15, err_msg=f"{name}({x})")


# the lesson's recipe: each primitive's value and rule, side by side ---------------------------------
def test_each_primitive_is_a_value_and_a_rule_and_the_first_order_pass_records_the_rule():
    from microjax import primitives

    src = inspect.getsource(primitives.mul_jvp_x) + inspect.getsource(primitives.tanh_jvp)
    assert "g * y" in src and "(g + g * out) * (1.0 - out)" in src
    for name, (fn, args) in {"mul": (lambda a, b: a * b, (0.3, -1.2)), "tanh": (mj.tanh, (0.4,)),
                             "div": (lambda a, b: a / b, (0.3, -1.2)), "max": (mj.maximum, (0.3, -1.2))}.items():
        node = fn(*map(Value, args))
        rules = mj.core.PRIMITIVES[name].rules
        assert node.op == name and node.local_grads == tuple(r(1.0, *args, node.data) for r in rules)


# the lesson's single-weight example ----------------------------------------------------------------
def test_single_weight_gradient_descent_16_to_064_to_00256():
    x, y, lr = 2.0, 2.0, 0.1
    loss = lambda w: (w * x - y) ** 2  # noqa: E731
    w, losses = 3.0, []
    for _ in range(3):
        value, dw = value_and_grad(loss)(w)
        losses.append(value)
        w = w - lr * dw
    assert losses == pytest.approx([16.0, 0.64, 0.0256], rel=1e-12)


# the lesson's MLP against jax.grad on the JAX model ------------------------------------------------
@pytest.mark.slow
def test_lesson_mlp_loss_gradient_matches_jax_for_every_parameter():
    from models import mlp as jmlp
    from train.mlp import SIZES, XS, YS

    params = mj.init_mlp(3, SIZES, seed=1)
    v, g = value_and_grad(mj.squared_error)(params, XS, YS)
    jv, jg = jax.value_and_grad(jmlp.squared_error)(jmlp.from_microjax(params, jnp.float64),
                                                     jnp.asarray(XS), jnp.asarray(YS))
    assert v == pytest.approx(float(jv), rel=REL)
    for layer, jlayer in zip(g, jg):
        np.testing.assert_allclose(layer["w"], jlayer["w"], rtol=REL, atol=1e-14)
        np.testing.assert_allclose(layer["b"], jlayer["b"], rtol=REL, atol=1e-14)


# purity, structure, depth, reuse -------------------------------------------------------------------
def test_grad_is_pure_and_shaped_like_its_input():
    params = {"w": [1.0, -2.0, 3.0], "b": (0.5,), "nested": {"k": [[2.0]]}}
    before = copy.deepcopy(params)
    f = lambda p: (p["w"][0] * p["w"][1] + p["w"][2] * p["b"][0] + p["nested"]["k"][0][0] ** 2).tanh()  # noqa
    g1, g2 = grad(f)(params), grad(f)(params)
    assert params == before
    assert g1 == g2
    assert isinstance(g1["b"], tuple) and isinstance(g1["w"], list) and isinstance(g1["w"][2], float)
    assert jax.tree.structure(g1) == jax.tree.structure(before)
    assert list(g1) == list(jax.tree.unflatten(jax.tree.structure(params), jax.tree.leaves(g1))) == ["b", "nested", "w"]


def test_values_are_immutable():
    v = Value(2.0)
    with pytest.raises(AttributeError, match="immutable"):
        v.data = 3.0
    with pytest.raises(AttributeError):
        v.grad = 1.0


def test_deep_chain_has_no_recursion_error():
    def chain(x):
        for _ in range(200_000):
            x = x + 1.0
        return x

    assert grad(chain)(0.0) == 1.0


def test_reused_nodes():
    def f(a):
        b = a + a
        return b + b

    assert grad(f)(1.5) == 4.0
    assert grad(lambda a: a * a * a)(2.0) == 12.0


def test_dot_and_sum_are_single_nodes_on_a_first_order_pass():
    w, x = [Value(1.0), Value(-2.0)], [3.0, Value(0.5)]
    node = mj.dot(w, x)
    assert node.data == 2.0 and len(node.parents) == 3 and node.op == "dot"
    assert grad(lambda w: mj.dot(w, [3.0, 4.0]))([1.0, 2.0]) == [3.0, 4.0]
    assert grad(lambda xs: mj.sum(xs, xs[0]))([1.0, 2.0]) == [2.0, 1.0]
    assert mj.dot([1.0, 2.0], [3.0, 4.0]) == 11.0 and mj.sum([1, 2]) == 3.0  # plain numbers: plain floats
    with pytest.raises(ValueError, match="lengths differ"):
        mj.dot([1.0], [1.0, 2.0])
    assert grad(grad(lambda x: mj.dot([x, x], [x, 2.0])))(3.0) == 2.0  # nested: products and sums


def test_functions_accept_numbers_and_values():
    assert mj.exp(0.0) == 1.0 and mj.tanh(0.0) == 0.0 and mj.relu(-1) == 0.0 and mj.sigmoid(0.0) == 0.5
    assert isinstance(mj.log(Value(2.0)), Value)
    assert mj.log(Value(2.0)).data == math.log(2.0)
    assert mj.maximum(1, 2.0) == 2.0 and mj.where(True, 1.0, 2.0) == 1.0 and mj.cond(0.0, abs, mj.exp, 0.0) == 1.0


def test_draw_dot_labels_ops_values_and_gradients(tmp_path):
    dot = mj.draw_dot(lambda x, w: (x * w["a"] + 1.0).tanh(), 2.0, {"a": -0.5})
    assert dot.startswith("digraph")
    assert "tanh" in dot and "arg0" in dot and "arg1['a']" in dot.replace("\\", "")
    assert "grad 1.0000" in dot  # the output
    assert dot.count("->") == 5
    node = Value(2.0) * 3.0
    assert "data 6.0000" in mj.draw_dot(node)
    import shutil

    if shutil.which("dot"):
        assert mj.render(dot, tmp_path / "g.svg").read_text().startswith("<?xml")
    else:
        with pytest.raises(RuntimeError, match="Graphviz"):
            mj.render(dot, tmp_path / "g.svg", engine="dot")
        assert "<svg" in mj.render(dot, tmp_path / "g.svg").read_text()  # drawn by matplotlib instead


def test_microjax_never_imports_jax():
    code = "import sys, microjax; microjax.jit(microjax.grad(lambda x: x * x))(1.0); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
    for path in (ROOT / "microjax").glob("*.py"):
        assert "import jax" not in path.read_text() and "from jax" not in path.read_text(), path


def test_train_mlp_lowers_the_loss_and_matches_jax(capsys):
    from train import mlp as cli

    cli.main(["--steps", "30"])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step")]
    losses = [float(l.split("loss")[1]) for l in lines]
    assert len(losses) == 30 and losses[-1] < 0.1 * losses[0]
    cli.main(["--steps", "10", "--compare", "--seed", "3"])
    last = capsys.readouterr().out.splitlines()[-2]
    assert last.startswith("largest loss difference") and float(last.split(":")[1]) < 1e-12
