"""The scalar autograd engine: the primitives' rules and immutable `Value` nodes that apply them.

Each primitive is the lesson's recipe: its forward value and its local derivative with respect to each
operand, side by side in one table (`PRIMITIVES`, under JAX's primitive names); a new op is one entry
and one method. A node records its operands and, for a first-order pass, its local derivatives as
floats. The derivatives are written with arithmetic that works on floats and on Values alike, so when
a derivative will itself be differentiated (grad of grad, jvp of grad), the passes (`passes.py`) call
the same rules on the nodes and the derivative is recorded as new nodes.
"""

import itertools
import math
import operator
from numbers import Real

__all__ = ["Value", "PRIMITIVES", "derivatives", "exp", "log", "tanh", "relu", "sigmoid", "dot", "sum"]


# -- forward values with their domain errors -----------------------------------------------------------
def _div(a, b):
    if b == 0:
        raise ZeroDivisionError(f"div: division by zero ({a!r} / {b!r})")
    return a / b


def _log(x):
    if x <= 0:
        raise ValueError(f"log: argument must be positive, got {x!r}")
    return math.log(x)


def _logistic(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _power(a, b):
    if a < 0 and b != int(b):
        raise ValueError(f"pow: negative base {a!r} to the fractional power {b!r}")
    if a == 0 and b < 0:
        raise ZeroDivisionError(f"pow: zero base to the negative power {b!r}")
    return a**b


# -- derivatives that need a case analysis (JAX's values where the plain formula fails) ----------------
def _pow_base_grad(a, b):
    """d(a^b)/da = b a^(b-1); 0 for b == 0 and inf at a == 0 with b < 1, as JAX."""
    ad, bd = _data(a), _data(b)
    if bd == 0:
        return 0.0
    if ad == 0 and bd < 1:
        return math.copysign(math.inf, bd)
    return b * a ** (b - 1)


def _pow_exponent_grad(a, out):
    """d(a^b)/db = a^b log a; JAX takes it as 0 at a == 0, and for a < 0 it is undefined."""
    ad = _data(a)
    return out * log(a) if ad > 0 else (0.0 if ad == 0 else math.nan)


def _swap_halves(xs_and_ys):
    n = len(xs_and_ys) // 2
    return xs_and_ys[n:] + xs_and_ys[:n]


def _integer_pow_grad(x, n):
    return 0.0 if n == 0 else 1.0 if n == 1 else n * x ** (n - 1)


# -- the primitives ------------------------------------------------------------------------------------
# JAX's name: (forward value on floats, local derivatives d(out)/d(operand) for each operand, given the
# operands and the output; a tuple when they are constants). The derivatives are floats on a first-order
# pass and Values on a nested one, so they are written with arithmetic and comparisons that work on both.
PRIMITIVES = {
    "add": (operator.add, (1.0, 1.0)),
    "add_any": (operator.add, (1.0, 1.0)),  # add: how JAX names summing cotangents
    "sub": (operator.sub, (1.0, -1.0)),
    "mul": (operator.mul, lambda a, b, out: (b, a)),
    "div": (_div, lambda a, b, out: (1.0 / b, -out / b)),
    "neg": (operator.neg, (-1.0,)),
    "exp": (math.exp, lambda x, out: (out,)),
    "log": (_log, lambda x, out: (1.0 / x,)),
    "tanh": (math.tanh, lambda x, out: ((1.0 - out) * (1.0 + out),)),  # JAX's form: exact near |tanh| = 1
    "logistic": (_logistic, lambda x, out: (out * (1.0 - out),)),  # sigmoid
    "max": (lambda x: x if x > 0 else 0.0, lambda x, out: (1.0 if x > 0 else 0.0,)),  # relu: max(x, 0.0)
    "integer_pow": (_power, lambda x, n, out: (_integer_pow_grad(x, n), 0.0)),  # n: a constant int
    "pow": (_power, lambda a, b, out: (_pow_base_grad(a, b), _pow_exponent_grad(a, out))),
    "copy": (float, (1.0,)),  # a transform's input, fresh, standing for an outer Value
    # n-ary, one node for a whole sum (forward values in dot and sum below); args are xs + ys, start + xs
    "dot": (None, lambda *operands_and_out: _swap_halves(operands_and_out[:-1])),  # d/dx_i = y_i, d/dy_i = x_i
    "sum": (None, lambda *operands_and_out: (1.0,) * (len(operands_and_out) - 1)),
}


# -- applying a primitive: Value's operators and methods ---------------------------------------------------
def _unary(op):
    """The method applying `op` to a Value: `x.tanh()`."""
    forward, rule = PRIMITIVES[op]
    constant = type(rule) is tuple

    def method(x):
        xd = x.data
        out = forward(xd)
        parents = (x,)
        return _node(out, parents, rule if constant else rule(xd, out), op, parents)

    return method


def _binary(op):
    """The operator applying `op` to a Value and a Value or a number: `x * y`, `x * 2.0`."""
    forward, rule = PRIMITIVES[op]
    constant = type(rule) is tuple

    def method(a, b):
        if type(b) is not Value:
            return _apply2(op, a, b)
        ad, bd = a.data, b.data
        out = forward(ad, bd)
        args = (a, b)
        return _node(out, args, rule if constant else rule(ad, bd, out), op, args)

    return method


def _reflected(op):
    """The reflected operator, `2.0 * x`: Python calls it only when the other operand is not a Value."""
    return lambda a, b: _apply2(op, b, a)


def _apply2(op, a, b):
    """op(a, b) for any mix of Values and numbers, at least one a Value: the general, slower path."""
    a = a if type(a) is Value else _constant(a)
    b = b if type(b) is Value else _constant(b)
    ad, bd = _data(a), _data(b)
    out = PRIMITIVES[op][0](ad, bd)
    local = derivatives(op, ad, bd, out)
    if type(b) is not Value:
        return _node(out, (a,), local[:1], op, (a, b))
    if type(a) is not Value:
        return _node(out, (b,), local[1:], op, (a, b))
    return _node(out, (a, b), local, op, (a, b))


def derivatives(op, *operands_and_out):
    """The local derivatives of `op` with respect to each operand, from its rule in PRIMITIVES."""
    rule = PRIMITIVES[op][1]
    return rule if type(rule) is tuple else rule(*operands_and_out)


def _constant(x):
    if type(x) is float or type(x) is int:
        return x
    if isinstance(x, Real):
        return float(x)
    raise TypeError(f"unsupported operand: expected a Value or a number, got {type(x).__name__}")


class Value:
    """A scalar in an expression graph: its data; the primitive `op` that made it and its operands `args`
    (Values and constant numbers); the Values among them (`parents`) and d(self)/d(parent) for each
    (`local_grads`); and `serial`, its place in creation order (parents always come first)."""

    __slots__ = ("data", "parents", "local_grads", "op", "args", "serial")

    def __init__(self, data, parents=(), local_grads=(), op="", args=None):
        parents = tuple(parents)
        _set_data(self, float(data))
        _set_parents(self, parents)
        _set_local_grads(self, tuple(local_grads))
        _set_op(self, op)
        _set_args(self, parents if args is None else tuple(args))
        _set_serial(self, next(_serials))

    def __setattr__(self, name, value):
        raise AttributeError(f"Value is immutable: cannot set {name!r}")

    # comparisons look at the data (as JAX's tracers do under grad): a branch is not differentiated
    def __lt__(self, other):
        return self.data < _data(other)

    def __le__(self, other):
        return self.data <= _data(other)

    def __gt__(self, other):
        return self.data > _data(other)

    def __ge__(self, other):
        return self.data >= _data(other)

    def __repr__(self):
        return f"Value(data={self.data!r}{', op=' + repr(self.op) if self.op else ''})"

    # each operator and method applies one primitive (see PRIMITIVES); a number operand is a constant
    __add__, __radd__ = _binary("add"), _reflected("add")
    __sub__, __rsub__ = _binary("sub"), _reflected("sub")
    __mul__, __rmul__ = _binary("mul"), _reflected("mul")
    __truediv__, __rtruediv__ = _binary("div"), _reflected("div")
    __rpow__ = _reflected("pow")
    __neg__, exp, log, tanh, sigmoid, relu = map(_unary, ("neg", "exp", "log", "tanh", "logistic", "max"))

    def __pow__(self, other):  # as in JAX: x ** 2 is integer_pow[y=2], x ** 2.0 and x ** y are pow
        return _apply2("integer_pow" if type(other) is int else "pow", self, other)


# the slots' own setters are the only way in, so nodes stay immutable
_set_data, _set_parents, _set_local_grads, _set_op, _set_args, _set_serial = (
    getattr(Value, s).__set__ for s in Value.__slots__)
_serials = itertools.count()  # creation order: parents before children, and the order JAX records equations
_new = object.__new__


def _node(data, parents, local_grads, op, args):
    """Make a node without the checks of __init__: the hot path of every op."""
    v = _new(Value)
    _set_data(v, data)
    _set_parents(v, parents)
    _set_local_grads(v, local_grads)
    _set_op(v, op)
    _set_args(v, args)
    _set_serial(v, next(_serials))
    return v


def _data(x):
    return x.data if type(x) is Value else x


def _function(method):
    def fn(x):
        return getattr(x, method)() if type(x) is Value else getattr(Value(x), method)().data

    fn.__name__ = method
    fn.__doc__ = f"`{method}` of a Value (a new Value) or of a number (a float)."
    return fn


exp, log, tanh, relu, sigmoid = (_function(m) for m in ("exp", "log", "tanh", "relu", "sigmoid"))


def add_any(a, b):
    """a + b for cotangents and tangents: a float, or a node named as JAX names it."""
    return _apply2("add_any", a, b) if type(a) is Value or type(b) is Value else a + b


def dot(xs, ys):
    """sum_i xs[i] * ys[i] as one node (a float when no operand is a Value); numbers are constants."""
    if len(xs) != len(ys):
        raise ValueError(f"dot: lengths differ ({len(xs)} and {len(ys)})")
    total, parents, local = 0.0, [], []
    for x, y in zip(xs, ys):
        xv, yv = type(x) is Value, type(y) is Value
        xd, yd = (x.data if xv else x), (y.data if yv else y)
        total += xd * yd
        if xv:
            parents.append(x)
            local.append(yd)
        if yv:
            parents.append(y)
            local.append(xd)
    return _node(total, tuple(parents), tuple(local), "dot", (*xs, *ys)) if parents else total


def sum(xs, start=0.0):  # noqa: A001 - microjax.sum, as jnp.sum
    """start + xs[0] + xs[1] + ... as one node (a float when none is a Value), added left to right."""
    total, parents = start.data if type(start) is Value else start, [start] if type(start) is Value else []
    for x in xs:
        if type(x) is Value:
            total += x.data
            parents.append(x)
        else:
            total += x
    return _node(total, tuple(parents), (1.0,) * len(parents), "sum", (start, *xs)) if parents else total
