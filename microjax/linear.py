"""Linear variables and their transposition: how the reverse pass works when it must itself be
differentiated or staged (grad of grad, jit of grad, make_jaxpr of grad), as JAX's does.

Running each node's derivative rule with a `Lin` in place of its operands' tangents records the tangent
as a small linear program: `mul(g, y)`, `neg(g)`, `add(g1, g2)`... (the rule's other operations, which
do not involve g, compute as usual: JAX's residuals). Transposing that program, equation by equation
from the last, turns the output's cotangent into each input's: `mul(g, y)` sends `mul(ct, y)` to g,
`add(g1, g2)` sends ct to both. These are JAX's own transposition rules, so the equations a printed
`grad` shows are JAX's.
"""

import itertools
import operator

from . import core
from .lax import add_any, div, select_n

__all__ = ["Lin", "transpose"]

_serials = itertools.count()


class Lin:
    """A tangent as a linear function of the inputs' tangents: the equation `op(args)` that makes it."""

    __slots__ = ("op", "args", "serial")

    def __init__(self, op, args):
        self.op, self.args, self.serial = op, args, next(_serials)

    def __add__(self, other):
        return _bind("add", (self, other))

    def __radd__(self, other):
        return _bind("add", (other, self))

    def __sub__(self, other):
        return _bind("sub", (self, other))

    def __rsub__(self, other):
        return _bind("sub", (other, self))

    def __mul__(self, other):
        return _bind("mul", (self, other))

    def __rmul__(self, other):
        return _bind("mul", (other, self))

    def __truediv__(self, other):
        return _bind("div", (self, other))

    def __neg__(self):
        return Lin("neg", (self,))

    def __repr__(self):
        return f"Lin({self.op})"


def _zero(x):
    return type(x) is float and x == 0.0


def _bind(name, operands):
    """A primitive applied to operands some of which are linear: a linear equation, or an error if the
    primitive is not linear in them (a derivative rule must be linear in its tangent)."""
    if name == "mul" or name == "div":
        x, y = operands
        if (type(x) is Lin) != (type(y) is Lin) and (name == "mul" or type(y) is not Lin):
            return Lin(name, operands)
    elif name in ("add", "add_any", "sub"):
        x, y = operands
        lx, ly = type(x) is Lin, type(y) is Lin
        if lx and ly:
            return Lin(name, operands)
        if lx and _zero(y):
            return x
        if ly and _zero(x):
            return -y if name == "sub" else y
    elif name == "neg":
        return Lin(name, operands)
    elif name == "select_n" and type(operands[0]) is not Lin and all(
            type(x) is Lin or _zero(x) for x in operands[1:]):
        return Lin(name, operands)
    elif name == "copy":
        return operands[0]
    raise TypeError(f"{name} is not linear in a tangent: a derivative rule applied it to {operands!r}")


core.linear_type, core.linear_bind = Lin, _bind


def transpose(seeds, inputs):
    """The cotangent of each of `inputs` (Lin leaves; None where it is zero) given cotangents of outputs,
    `seeds` [(Lin, cotangent)]: JAX's backward pass over the linear program, last equation first."""
    ct = {}

    def send(lin, c):
        ct[lin] = add_any(ct[lin], c) if lin in ct else c

    for lin, c in seeds:
        send(lin, c)
    leaves = set(inputs)
    for eqn in _program([lin for lin, _ in seeds], leaves):
        c = ct.pop(eqn, None)
        if c is not None:
            TRANSPOSE[eqn.op](c, send, *eqn.args)
    return [ct.get(x) for x in inputs]


def _program(outputs, leaves):
    """The linear equations the outputs depend on, last first (no recursion)."""
    seen, stack = set(), [x for x in outputs if x not in leaves]
    while stack:
        eqn = stack.pop()
        if eqn in seen:
            continue
        seen.add(eqn)
        for a in eqn.args:
            if type(a) is Lin and a not in seen and a not in leaves:
                stack.append(a)
    return sorted(seen, key=_by_serial, reverse=True)


_by_serial = operator.attrgetter("serial")


def _mul_t(c, send, x, y):  # a float cotangent of exactly 1 (concrete, never staged) costs no product
    one = type(c) is float and c == 1.0
    if type(x) is Lin:
        send(x, y if one else c * y)
    else:
        send(y, x if one else x * c)


def _sub_t(c, send, x, y):
    send(x, c)
    send(y, -c)


def _add_t(c, send, x, y):
    send(x, c)
    send(y, c)


def _select_t(c, send, p, *cases):
    for i, case in enumerate(cases):
        if type(case) is Lin:
            send(case, select_n(p, *(c if j == i else 0.0 for j in range(len(cases)))))


TRANSPOSE = {"mul": _mul_t, "div": lambda c, send, x, y: send(x, div(c, y)), "neg": lambda c, send, x: send(x, -c),
             "add": _add_t, "add_any": _add_t, "sub": _sub_t, "select_n": _select_t}
