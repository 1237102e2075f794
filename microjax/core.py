"""The engine's core: immutable `Value` nodes, abstract `Tracer`s, and `bind`, which applies a primitive to
whatever it is given.

`bind(name, *operands)` is a float on floats; a new `Value` node when an operand is a Value (the node
records its operands and, for the first-order pass, d(node)/d(operand) as floats); and a `Tracer` when
an operand is one. A Tracer has no value: it is one equation of a program being staged (by `make_jaxpr`,
`jit` or `vmap`), so a Python `if` on it is an error, as on JAX's tracers. The primitives themselves, each
a forward value beside its derivative rule, are in `primitives.py`, which registers them here.
"""

import itertools
import operator
from dataclasses import dataclass
from numbers import Real

__all__ = ["Value", "Tracer", "Primitive", "PRIMITIVES", "bind", "state", "ConcretizationTypeError",
           "TracerBoolConversionError", "UnexpectedTracerError"]


class ConcretizationTypeError(TypeError):
    """A traced value's number was asked for where there is none (as `jax.errors.ConcretizationTypeError`)."""


class TracerBoolConversionError(ConcretizationTypeError):
    """A Python branch on a staged value (as `jax.errors.TracerBoolConversionError`)."""


class UnexpectedTracerError(Exception):
    """A Tracer used after the trace that made it has finished (as `jax.errors.UnexpectedTracerError`)."""


@dataclass(frozen=True)
class Primitive:
    """One primitive: its forward value on floats, its derivative rule, and what the first-order pass needs.

    `jvp(tangents, *operands, out)` is the tangent of the output given each operand's tangent (None where
    it is zero), written with ops that work on floats, Values, Tracers and linear variables alike, and
    returns None for a zero tangent. `rules` are the per-operand rules it was built from (`defjvp`),
    `constant` the derivatives of a linear primitive (add: 1 and 1); `local(datas, out)` the floats
    d(out)/d(operand) for the first-order pass where neither fits (dot, sum)."""

    name: str
    value: object
    jvp: object
    rules: tuple = None
    constant: tuple = None
    local: object = None
    boolean: bool = False  # a comparison: a bool, never a node, and no derivative


PRIMITIVES = {}


class _State:
    depth = 0  # differentiation transforms tracing now (JAX keeps a stack); > 0 means nested
    anchor = None  # (node, pass) whose derivative rule is running: the printer puts its equations after it
    traces = []  # the abstract traces open now, innermost last
    run = {}  # name -> the forward value in force (with the debug_nans/debug_infs checks when switched on)


state = _State()
_serials = itertools.count()  # creation order: parents before children, and the order JAX records equations
_new = object.__new__


class Value:
    """A scalar in an expression graph: its data; the primitive `op` that made it and its operands `args`
    (Values and constant numbers); the Values among them (`parents`) and d(self)/d(parent) for each
    (`local_grads`); and `serial`, its place in creation order (parents always come first).

    Comparisons look at the data (`==` included), so a Python `if` works on it as on JAX's tracers under
    grad; nodes hash by identity."""

    __slots__ = ("data", "parents", "local_grads", "op", "args", "serial")

    def __init__(self, data, parents=(), local_grads=(), op="", args=None):
        if not isinstance(data, Real):
            raise TypeError(f"Value needs a number, got {type(data).__name__}")
        parents = tuple(parents)
        _set_data(self, float(data))
        _set_parents(self, parents)
        _set_local_grads(self, tuple(local_grads))
        _set_op(self, op)
        _set_args(self, parents if args is None else tuple(args))
        _set_serial(self, next(_serials))

    def __setattr__(self, name, value):
        raise AttributeError(f"Value is immutable: cannot set {name!r}")

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self.data)

    def __float__(self):  # as on JAX's tracers under grad: float() is refused, int() and bool() are not
        raise ConcretizationTypeError(
            "float() of a traced Value: inside a transform a Value stands for a traced number; compute with it "
            "(or return it from the transform), and read its .data only where the number itself is wanted")

    def __int__(self):
        return int(self.data)

    def __repr__(self):
        return f"Value(data={self.data!r}{', op=' + repr(self.op) if self.op else ''})"


def _compare(op):
    def method(a, b):
        t = type(b)
        if t is Value:
            return op(a.data, b.data)
        if t is float or t is int or (isinstance(b, Real) and t is not bool):
            return op(a.data, b)
        return NotImplemented

    return method


for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(Value, f"__{_name}__", _compare(getattr(operator, _name)))

# the slots' own setters are the only way in, so nodes stay immutable
_set_data, _set_parents, _set_local_grads, _set_op, _set_args, _set_serial = (
    getattr(Value, s).__set__ for s in Value.__slots__)


def node(data, parents, local_grads, op, args):
    """Make a node without the checks of __init__: the hot path of every op."""
    v = _new(Value)
    _set_data(v, data)
    _set_parents(v, parents)
    _set_local_grads(v, local_grads)
    _set_op(v, op)
    _set_args(v, args)
    _set_serial(v, next(_serials))
    return v


# -- abstract tracing --------------------------------------------------------------------------------
class Trace:
    """One staging trace (make_jaxpr, jit or vmap): the equations it records, in creation order."""

    def __init__(self):
        self.level = len(state.traces)
        self.eqns = []
        self.active = True

    def __enter__(self):
        state.traces.append(self)
        return self

    def __exit__(self, *exc):
        state.traces.pop()
        self.active = False


def _no_data(t):
    raise ConcretizationTypeError(
        f"a Tracer has no value: {t!r} stands for a number that jit, make_jaxpr or vmap only knows the type of; "
        "compute with it instead (microjax.where or microjax.cond to branch)")


class Tracer(Value):
    """A staged scalar: one equation `op(args)` of the program being traced, of dtype f64 or bool."""

    __slots__ = ("trace", "anchor", "dtype")
    data = property(_no_data)

    def __bool__(self):
        raise TracerBoolConversionError(
            f"Attempted boolean conversion of a traced value ({self.dtype}[], from {self.op or 'an input'}): "
            "under jit, make_jaxpr and vmap a value is not known while the function is traced, so a Python "
            "`if` or `while` on it cannot be staged. Use microjax.where(c, x, y) or "
            "microjax.cond(pred, true_fun, false_fun, *operands) to branch, or mark the argument static "
            "(jit's static_argnums).")

    def __float__(self):
        raise ConcretizationTypeError(f"float() of a traced value ({self.dtype}[]): there is no number while "
                                      "tracing; compute with it, or use microjax.where / microjax.cond")

    __int__ = __index__ = __float__
    __hash__ = object.__hash__

    def __repr__(self):
        if self.op == "literal":
            return f"Tracer(literal {self.args[0]!r})"
        return f"Tracer({self.dtype}[]{', op=' + repr(self.op) if self.op else ', an input'})"


_set_trace, _set_anchor, _set_dtype = (getattr(Tracer, s).__set__ for s in Tracer.__slots__)


def tracer(op, args, dtype="f64", trace=None):
    """A new staged equation, recorded in the innermost trace among its operands' (JAX's rule)."""
    parents = []
    for a in args:
        if isinstance(a, Value):
            parents.append(a)
            if type(a) is Tracer:
                if not a.trace.active:
                    raise UnexpectedTracerError(
                        f"{a!r} was made by a jit, make_jaxpr or vmap trace that has finished, and is used after it "
                        "(kept in a global or a closure?): return values from the traced function instead")
                if trace is None or a.trace.level > trace.level:
                    trace = a.trace
    if trace is None:
        trace = state.traces[-1]
    t = _new(Tracer)
    _set_parents(t, tuple(parents))
    _set_local_grads(t, ())
    _set_op(t, op)
    _set_args(t, tuple(args))
    _set_serial(t, next(_serials))
    _set_trace(t, trace)
    _set_anchor(t, state.anchor)
    _set_dtype(t, dtype)
    if op and op != "literal":
        trace.eqns.append(t)
    return t


def literal(x):
    """A constant as a staged literal (so that ops on it are staged too, as JAX stages them), or the number
    itself when nothing is being traced."""
    if not state.traces:
        return x
    return tracer("literal", (x,), "bool" if type(x) is bool else "f64")


# -- applying a primitive ---------------------------------------------------------------------------
linear_type = None  # set by linear.py: the type of a linear (tangent) variable, and how it binds
linear_bind = None


def bind(name, *operands):
    """Apply primitive `name` to floats (a float), Values (a new node) or Tracers (a staged equation)."""
    has_value = has_tracer = False
    for x in operands:
        t = type(x)
        if t is Value:
            has_value = True
        elif t is Tracer:
            has_tracer = True
        elif t is linear_type:  # a tangent being linearized: a linear equation, whatever else is there
            return linear_bind(name, operands)
        elif t is not float and t is not int and t is not bool and not isinstance(x, Real):
            raise TypeError(f"{name}: unsupported operand of type {type(x).__name__} (expected a number or a Value)")
    if has_tracer:
        return tracer(name, operands, "bool" if PRIMITIVES[name].boolean else "f64")
    run = state.run[name]
    if not has_value:
        return run(*operands)
    datas = tuple(x.data if type(x) is Value else x for x in operands)
    out = run(*datas)
    prim = PRIMITIVES[name]
    if prim.boolean:
        return out
    parents = tuple(x for x in operands if type(x) is Value)
    return node(out, parents, local_grads(prim, operands, datas, out), name, operands)


def local_grads(prim, operands, datas, out):
    """d(out)/d(operand) as floats for each Value operand: a rule at tangent 1.0, a linear primitive's
    constant, or the primitive's own `local` (dot, sum)."""
    if prim.rules is not None:
        return tuple(rule(1.0, *datas, out) for rule, x in zip(prim.rules, operands) if type(x) is Value)
    if prim.constant is not None:
        return tuple(d for d, x in zip(prim.constant, operands) if type(x) is Value)
    local = prim.local(datas, out)
    return tuple(d for d, x in zip(local, operands) if type(x) is Value)
