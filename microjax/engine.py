"""The scalar autograd engine: immutable `Value` nodes and a functional reverse pass.

Each op is the lesson's recipe: compute the forward value and the local derivative with respect to
each parent, side by side, and record them on a new node. Nothing is ever written back to a node:
`backward` keeps the cotangents in a local dict that dies with the call (as in JAX's Autodidax), so
gradients cannot pile up across calls and there is nothing to zero.
"""

import math

__all__ = ["Value", "backward", "exp", "log", "tanh", "relu", "sigmoid", "dot", "sum"]


class Value:
    """A scalar in an expression graph: its data, its parents and d(self)/d(parent) for each."""

    __slots__ = ("data", "parents", "local_grads", "op")

    def __init__(self, data, parents=(), local_grads=(), op=""):
        _set_data(self, float(data))
        _set_parents(self, parents)
        _set_local_grads(self, local_grads)
        _set_op(self, op)

    def __setattr__(self, name, value):
        raise AttributeError(f"Value is immutable: cannot set {name!r}")

    def __repr__(self):
        return f"Value(data={self.data!r}{', op=' + repr(self.op) if self.op else ''})"

    # -- the primitives: forward value and local gradients side by side ------------------------
    def __add__(self, other):
        other = _lift(other)
        return _node(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other):
        other = _lift(other)
        return _node(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __truediv__(self, other):
        other = _lift(other)
        a, b = self.data, other.data
        if b == 0.0:
            raise ZeroDivisionError(f"div: division by zero ({a!r} / {b!r})")
        return _node(a / b, (self, other), (1.0 / b, -a / (b * b)), "/")

    def __pow__(self, other):
        a = self.data
        if isinstance(other, Value):
            b = other.data
            out = _power(a, b)
            # d(a^b)/db = a^b log a; JAX takes it as 0 at a == 0, and for a < 0 it is undefined.
            dlog = out * math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
            return _node(out, (self, other), (_dpow(a, b), dlog), "**")
        b = float(other)
        return _node(_power(a, b), (self,), (_dpow(a, b),), f"**{b:g}")

    def exp(self):
        out = math.exp(self.data)
        return _node(out, (self,), (out,), "exp")

    def log(self):
        x = self.data
        if x <= 0:
            raise ValueError(f"log: argument must be positive, got {x!r}")
        return _node(math.log(x), (self,), (1.0 / x,), "log")

    def tanh(self):
        t = math.tanh(self.data)
        return _node(t, (self,), (1.0 - t * t,), "tanh")

    def relu(self):
        x = self.data
        return _node(x if x > 0 else 0.0, (self,), (1.0 if x > 0 else 0.0,), "relu")

    def sigmoid(self):
        x = self.data
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        return _node(s, (self,), (s * (1.0 - s),), "sigmoid")

    # -- everything else is built from the primitives ------------------------------------------
    def __neg__(self):
        return _node(-self.data, (self,), (-1.0,), "neg")

    def __sub__(self, other):
        return self + (-_lift(other))

    def __radd__(self, other):
        return _lift(other) + self

    def __rsub__(self, other):
        return _lift(other) - self

    def __rmul__(self, other):
        return _lift(other) * self

    def __rtruediv__(self, other):
        return _lift(other) / self

    def __rpow__(self, other):
        return _lift(other) ** self


_set_data = Value.data.__set__  # slot setters: the only way in, so nodes stay immutable
_set_parents = Value.parents.__set__
_set_local_grads = Value.local_grads.__set__
_set_op = Value.op.__set__
_new = object.__new__


def _node(data, parents, local_grads, op):
    """Make a node without the float() coercion of __init__: the hot path of every op."""
    v = _new(Value)
    _set_data(v, data)
    _set_parents(v, parents)
    _set_local_grads(v, local_grads)
    _set_op(v, op)
    return v


def _lift(x):
    if isinstance(x, Value):
        return x
    if isinstance(x, (int, float)):
        return _node(float(x), (), (), "")
    raise TypeError(f"unsupported operand: expected a Value or a number, got {type(x).__name__}")


def _power(a, b):
    if a < 0 and b != int(b):
        raise ValueError(f"pow: negative base {a!r} to the fractional power {b!r}")
    if a == 0 and b < 0:
        raise ZeroDivisionError(f"pow: zero base to the negative power {b!r}")
    return a**b


def _dpow(a, b):
    """d(a^b)/da, with JAX's values where a^(b-1) alone would fail: 0 for b == 0, inf at a == 0."""
    if b == 0:
        return 0.0
    if a == 0 and b < 1:
        return math.copysign(math.inf, b)
    return b * a ** (b - 1)


def _unary(method):
    def fn(x):
        return getattr(x, method)() if isinstance(x, Value) else getattr(_lift(x), method)().data

    fn.__name__ = method
    fn.__doc__ = f"`{method}` of a Value (a new Value) or of a number (a float)."
    return fn


exp, log, tanh, relu, sigmoid = (_unary(m) for m in ("exp", "log", "tanh", "relu", "sigmoid"))


# -- n-ary ops: one node for a whole sum, so a neuron is one node rather than 2n ---------------------
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
    return _node(total, tuple(parents), tuple(local), "dot") if parents else total


def sum(xs, start=0.0):  # noqa: A001 - microjax.sum, as jnp.sum
    """start + xs[0] + xs[1] + ... as one node (a float when none is a Value), added left to right."""
    total, parents = start.data if type(start) is Value else start, [start] if type(start) is Value else []
    for x in xs:
        if type(x) is Value:
            total += x.data
            parents.append(x)
        else:
            total += x
    return _node(total, tuple(parents), (1.0,) * len(parents), "sum") if parents else total


def topological_order(root):
    """Every node that `root` depends on, parents before children, without recursion."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents if p not in seen)
    return order


def backward(root):
    """d(root)/d(node) for every node in root's graph, as a fresh dict {node: float}."""
    grads = {root: 1.0}
    for node in reversed(topological_order(root)):
        g = grads.get(node, 0.0)
        for parent, local in zip(node.parents, node.local_grads):
            grads[parent] = grads.get(parent, 0.0) + local * g
    return grads
