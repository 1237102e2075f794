"""The operators of `Value` and `Tracer` (`x * y`, `x.tanh()`, `x ** 2`), each applying one primitive.

On Values they are the hot path of the first-order pass: one node per op, its local derivatives the
primitive's rules at tangent 1.0, computed right there beside the forward value. They are built from
the primitives table (`install_operators`), and rebuilt when a debug switch changes which forward
functions run, so that the checks cost nothing while the switches are off.
"""

from numbers import Real

from .core import PRIMITIVES, Tracer, Value, bind, node, state, tracer

__all__ = ["install_operators"]


def _constant(x):
    """A number operand as the float constant it stands for (None for anything else)."""
    t = type(x)
    if t is float:
        return x
    if t is int or t is bool or isinstance(x, Real):
        return float(x)
    return None


def _mixed(name, a, b):
    """op(a, b) where one side is not a Value: a number is a constant; anything else is not ours to handle."""
    if type(a) is not Value and type(a) is not Tracer:
        a = _constant(a)
        if a is None:
            return NotImplemented
    if type(b) is not Value and type(b) is not Tracer:
        b = _constant(b)
        if b is None:
            return NotImplemented
    return bind(name, a, b)


def _binary(name):
    """The operator applying `name` to a Value and a Value or a number, both ways round: `x * y`, `x * 2.0`,
    `2.0 * x` (the hot path: one node, its local derivatives from the rules at tangent 1.0)."""
    prim, run = PRIMITIVES[name], state.run[name]
    rule0, rule1 = prim.rules or (None, None)
    both = prim.constant
    c0, c1 = both or (None, None)

    def method(a, b):
        tb = type(b)
        if tb is Value:
            ad, bd = a.data, b.data
            out = run(ad, bd)
            args = (a, b)
            local = both if rule0 is None else (rule0(1.0, ad, bd, out), rule1(1.0, ad, bd, out))
            return node(out, args, local, name, args)
        if tb is float or tb is int:
            ad = a.data
            out = run(ad, b)
            return node(out, (a,), (c0,) if rule0 is None else (rule0(1.0, ad, b, out),), name, (a, b))
        return _mixed(name, a, b)

    def reflected(a, b):  # b op a, where b is not a Value
        tb = type(b)
        if tb is float or tb is int:
            ad = a.data
            out = run(b, ad)
            return node(out, (a,), (c1,) if rule1 is None else (rule1(1.0, b, ad, out),), name, (b, a))
        return _mixed(name, b, a)

    return method, reflected


def _unary(name):
    prim, run = PRIMITIVES[name], state.run[name]
    if prim.constant is not None:
        local = prim.constant

        def method(x):
            args = (x,)
            return node(run(x.data), args, local, name, args)

        return method
    rule = prim.rules[0]

    def method(x):
        xd = x.data
        out = run(xd)
        args = (x,)
        return node(out, args, (rule(1.0, xd, out),), name, args)

    return method


def _power(pow_method):
    def power(x, y):  # as in JAX: x ** 2 is integer_pow[y=2], x ** 2.0 and x ** y are pow
        if type(y) is not int:
            return pow_method(x, y)
        if type(x) is Tracer:
            return tracer("integer_pow", (x, y))
        xd = x.data
        out = state.run["integer_pow"](xd, y)
        return node(out, (x,), (PRIMITIVES["integer_pow"].rules[0](1.0, xd, y, out),), "integer_pow", (x, y))

    return power


def _staged(name):
    return lambda a, b: _mixed(name, a, b)


def _staged_reflected(name):
    return lambda a, b: _mixed(name, b, a)


_BINARY = {"add": ("__add__", "__radd__"), "sub": ("__sub__", "__rsub__"), "mul": ("__mul__", "__rmul__"),
           "div": ("__truediv__", "__rtruediv__")}
_UNARY = {"neg": "__neg__", "abs": "__abs__", "exp": "exp", "log": "log", "tanh": "tanh", "logistic": "sigmoid",
          "relu": "relu", "sin": "sin", "cos": "cos", "sqrt": "sqrt"}


def install_operators():
    """(Re)build the operators of Value and Tracer from the primitives table: at import, and again when a
    debug switch changes which forward functions run (so the hot path carries no check when it is off)."""
    for name, (method, reflected) in _BINARY.items():
        forward, backward = _binary(name)
        setattr(Value, method, forward)
        setattr(Value, reflected, backward)
        setattr(Tracer, method, _staged(name))
        setattr(Tracer, reflected, _staged_reflected(name))
    for name, method in _UNARY.items():
        setattr(Value, method, _unary(name))
        setattr(Tracer, method, lambda x, name=name: tracer(name, (x,)))
    forward, backward = _binary("pow")
    Value.__pow__, Value.__rpow__ = _power(forward), backward
    Tracer.__pow__, Tracer.__rpow__ = _power(_staged("pow")), _staged_reflected("pow")
    for name in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(Tracer, f"__{name}__", _staged(name))
