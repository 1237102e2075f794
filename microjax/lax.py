"""The operations as functions, each working on floats, Values and Tracers alike (as `jax.lax` and
`jax.numpy` work on arrays and tracers): `exp`, `log`, `tanh`, `sin`, `maximum`, `where`, `cond`, `dot`...

A number in gives a float out; a Value in gives a new node; a Tracer in gives a staged equation. The
derivative rules in `primitives.py` are written with these, so the same rule computes a derivative,
records one, or stages one.
"""

from numbers import Real

from . import core
from .core import Tracer, Value, bind, state
from .tree_util import tree_flatten, tree_map

__all__ = ["exp", "log", "tanh", "sigmoid", "relu", "sqrt", "sin", "cos", "maximum", "minimum", "where",
           "select_n", "cond", "stop_gradient", "dot", "sum", "add_any", "div", "integer_pow", "power",
           "eq", "ne", "lt", "le", "gt", "ge"]

_run = state.run


def exp(x):
    return x.exp() if type(x) is Value else bind("exp", x)


def log(x):
    return x.log() if type(x) is Value else bind("log", x)


def tanh(x):
    return x.tanh() if type(x) is Value else bind("tanh", x)


def sigmoid(x):
    """1 / (1 + e**-x): JAX's `logistic`."""
    return x.sigmoid() if type(x) is Value else bind("logistic", x)


def relu(x):
    """max(x, 0.0), with jax.nn.relu's derivative (0 at 0)."""
    return x.relu() if type(x) is Value else bind("relu", x)


def sqrt(x):
    return x.sqrt() if type(x) is Value else bind("sqrt", x)


def sin(x):
    return x.sin() if type(x) is Value else bind("sin", x)


def cos(x):
    return x.cos() if type(x) is Value else bind("cos", x)


def _number(x):
    return float(x) if type(x) is not float and isinstance(x, Real) and not isinstance(x, Value) else x


def maximum(x, y):
    """The larger of x and y (nan if either is), with JAX's derivative: shared equally on a tie."""
    return bind("max", _number(x), _number(y))


def minimum(x, y):
    return bind("min", _number(x), _number(y))


def div(x, y):
    tx, ty = type(x), type(y)
    if tx is float and ty is float:
        return _run["div"](x, y)
    if tx is Value or ty is Value:  # the operator's fast path
        return x / y
    return bind("div", _number(x), _number(y))


def add_any(x, y):
    """x + y for tangents and cotangents: a float, or an equation named as JAX names it."""
    tx, ty = type(x), type(y)
    if tx is float and ty is float:
        return x + y
    if tx is Value and ty is Value:  # the hot path of a nested reverse pass: summing cotangents
        args = (x, y)
        return core.node(_run["add_any"](x.data, y.data), args, (1.0, 1.0), "add_any", args)
    return bind("add_any", _number(x), _number(y))


def integer_pow(x, y):
    if type(x) is float:
        return _run["integer_pow"](x, y)
    return x ** y if type(x) is Value or type(x) is Tracer else bind("integer_pow", x, y)


def power(x, y):
    """x ** y for a float or traced exponent (JAX's `pow`)."""
    tx, ty = type(x), type(y)
    if tx is float and ty is float:
        return _run["pow"](x, y)
    if tx is Value and ty is not int or ty is Value:
        return x ** y
    return bind("pow", _number(x), _number(y))


def _comparison(name):
    def compare(x, y):
        if type(x) is float and type(y) is float:
            return _run[name](x, y)
        return bind(name, _number(x), _number(y))

    compare.__name__ = name
    return compare


eq, ne, lt, le, gt, ge = (_comparison(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))


def select_n(p, *cases):
    """cases[p] (JAX's select_n): a known predicate picks; a staged one stages the choice."""
    if type(p) is bool:
        return cases[p]
    return bind("select_n", p, *map(_number, cases))


def _predicate(c):
    """A condition as a bool, or as a staged bool (a traced number c stands for c != 0, as in JAX)."""
    if type(c) is Tracer:
        return c if c.dtype == "bool" else ne(c, 0.0)
    if isinstance(c, Value):
        return c.data != 0
    return bool(c)


def where(c, x, y):
    """x where c holds, else y: the way to branch on a traced value (under jit, vmap and make_jaxpr a
    Python `if` is an error). With a known c it picks, and only the picked side is differentiated."""
    return select_n(_predicate(c), y, x)


def cond(pred, true_fun, false_fun, *operands):
    """true_fun(*operands) if pred else false_fun(*operands), as `jax.lax.cond`. A known pred runs one
    branch; a staged pred (under jit, vmap, make_jaxpr) traces both and selects each output leaf."""
    p = _predicate(pred)
    if type(p) is bool:
        return (true_fun if p else false_fun)(*operands)
    t_leaves, t_tree = tree_flatten(true_fun(*operands))
    f_leaves, f_tree = tree_flatten(false_fun(*operands))
    if t_tree != f_tree:
        raise TypeError(f"cond branch outputs must have the same pytree structure, but true_fun gives {t_tree} "
                        f"and false_fun gives {f_tree}")
    return t_tree.unflatten(select_n(p, f, t) for t, f in zip(t_leaves, f_leaves))


def stop_gradient(x):
    """x with a zero derivative (a pytree: each leaf), as `jax.lax.stop_gradient`."""
    def stop(leaf):
        if type(leaf) is Tracer:
            return bind("stop_gradient", leaf)
        return leaf.data if isinstance(leaf, Value) else leaf  # a constant: nothing flows back through it

    return tree_map(stop, x)


def dot(xs, ys):
    """sum_i xs[i] * ys[i]: one node for the whole sum on a first-order pass (a float when no operand is
    a Value); staged or nested, the products and sums JAX would record."""
    if len(xs) != len(ys):
        raise ValueError(f"dot: lengths differ ({len(xs)} and {len(ys)})")
    if state.depth > 1:
        return _chain(xs, ys)
    total, parents, local = 0.0, [], []
    for x, y in zip(xs, ys):
        tx, ty = type(x), type(y)
        if tx is Value:
            xd = x.data
        elif tx is float or tx is int:
            xd = x
        else:  # a Tracer, or a number of another type: the general path
            return _chain(xs, ys)
        if ty is Value:
            yd = y.data
        elif ty is float or ty is int:
            yd = y
        else:
            return _chain(xs, ys)
        total += xd * yd
        if tx is Value:
            parents.append(x)
            local.append(yd)
        if ty is Value:
            parents.append(y)
            local.append(xd)
    return core.node(total, tuple(parents), tuple(local), "dot", (*xs, *ys)) if parents else total


def _chain(xs, ys):
    total = None
    for x, y in zip(xs, ys):
        p = _number(x) * _number(y)
        total = p if total is None else total + p
    return 0.0 if total is None else total


def sum(xs, start=0.0):  # noqa: A001 - microjax.sum, as jnp.sum
    """start + xs[0] + xs[1] + ... added left to right: one node on a first-order pass (a float when none
    is a Value); staged or nested, the adds JAX would record (a start of 0.0 is no term)."""
    if not isinstance(xs, (list, tuple)):
        xs = list(xs)
    if state.depth > 1 or type(start) is Tracer:
        return _adds(xs, start)
    total, parents = start.data if type(start) is Value else start, [start] if type(start) is Value else []
    for x in xs:
        t = type(x)
        if t is Value:
            total += x.data
            parents.append(x)
        elif t is float or t is int:
            total += x
        else:  # a Tracer, or a number of another type
            return _adds(xs, start)
    return core.node(total, tuple(parents), (1.0,) * len(parents), "sum", (start, *xs)) if parents else total


def _adds(xs, start):
    total = None if type(start) is not Value and type(start) is not Tracer and start == 0.0 else start
    for x in xs:
        total = _number(x) if total is None else total + _number(x)
    return 0.0 if total is None else total


_SPECIAL = {"select_n": select_n, "integer_pow": integer_pow, "copy": lambda x: x, "stop_gradient": stop_gradient}


def apply(name, operands):
    """A staged equation's primitive applied to these operands (jit's and vmap's interpreters)."""
    special = _SPECIAL.get(name)
    return special(*operands) if special else bind(name, *operands)
