"""`make_jaxpr`: the traced graph printed in JAX's jaxpr notation, to set beside `jax.make_jaxpr`.

Each node is one equation named by its JAX primitive (`mul`, `tanh`, `integer_pow[y=2]`, `max` for
relu, ...); constants are literals (`2.0:f64[]`). `dot` and `sum` nodes, which JAX has no scalar
primitive for, are written out as the `mul`s and `add`s that compute them, left to right. Nodes that do
not depend on the inputs (closed-over Values) print as literals, and a nested transform's fresh inputs
(`copy`) as the Values they stand for, so the jaxpr of `grad(f)` is f's forward pass followed by its
backward pass. Only what the outputs need is printed (JAX also lists unused equations, as `_`).
"""

import itertools
from dataclasses import dataclass, field

from .engine import Value, _data
from .passes import depends_on, oldest, topological_order
from .transforms import _check_numbers, pauses_cycle_collection, trace, tree_flatten

__all__ = ["make_jaxpr", "Jaxpr", "Eqn"]


@dataclass(frozen=True)
class Eqn:
    """One equation: `outvar = primitive[params] invars...`; invars are variable names or float literals."""

    primitive: str
    invars: tuple
    outvar: str
    params: dict = field(default_factory=dict)

    def __str__(self):
        params = "".join(f"[{k}={v}]" for k, v in self.params.items())
        return f"{self.outvar}:f64[] = {self.primitive}{params} {' '.join(map(_atom, self.invars))}"


@dataclass(frozen=True)
class Jaxpr:
    invars: tuple
    eqns: tuple
    outvars: tuple

    def __str__(self):  # as JAX's pretty-printer: on one line when that fits in 80 columns
        head = f"{{ lambda ; {' '.join(v + ':f64[]' for v in self.invars)}. let"
        atoms = [_atom(v) for v in self.outvars]
        outs = f"({atoms[0]},)" if len(atoms) == 1 else f"({', '.join(atoms)})"
        line = f"{head} {'; '.join(map(str, self.eqns))} in {outs} }}"
        if len(line) <= 80:
            return line
        return "\n".join([head, *(f"    {e}" for e in self.eqns), f"  in {outs} }}"])


def _atom(x):
    return x if isinstance(x, str) else f"{float(x)!r}:f64[]"


def _name(n):
    """JAX's variable names: a, b, ..., z, ba, bb, ..."""
    s = ""
    while True:
        s = chr(ord("a") + n % 26) + s
        n //= 26
        if n == 0:
            return s


def make_jaxpr(f):
    """Return a function that traces f on its arguments (every argument's leaves become the inputs) and
    returns the graph as a `Jaxpr`; print it to read it in JAX's notation."""

    @pauses_cycle_collection
    def jaxpr(*args):
        out, traced = trace(f, args, tuple(range(len(args))))
        inputs = [v for _, values in traced for v in values]
        outs = tree_flatten(out)[0]
        _check_numbers(outs, "the outputs of f")
        order = topological_order([o for o in outs if type(o) is Value], since=oldest(inputs))
        live = depends_on(order, inputs)
        fresh = map(_name, itertools.count())
        names = {v: next(fresh) for v in inputs}
        eqns = []

        def atom(x):  # a variable, or a literal for a number or a Value that does not depend on the inputs
            return names[x] if type(x) is Value and x in live else _data(x)

        def emit(primitive, invars, **params):
            eqns.append(Eqn(primitive, tuple(invars), next(fresh), params))
            return eqns[-1].outvar

        for node in order:
            if node in live and node not in names:
                names[node] = _equations(node, atom, emit)
        return Jaxpr(tuple(names[v] for v in inputs), tuple(eqns), tuple(atom(o) for o in outs))

    return jaxpr


def _equations(node, atom, emit):
    """Emit the equations that compute `node`; return the variable (or literal) that holds it."""
    op, args = node.op, node.args
    if op == "copy":  # a nested transform's fresh input: the outer Value it stands for
        return atom(args[0])
    if op == "integer_pow":
        return emit(op, [atom(args[0])], y=args[1])
    if op == "max":  # relu: a node of one operand, JAX's max(x, 0.0)
        return emit(op, [atom(args[0]), 0.0])
    if op not in ("dot", "sum"):
        return emit(op, map(atom, args))
    total = None
    if op == "dot":  # x0*y0 + x1*y1 + ..., left to right, each product just before its add
        n = len(args) // 2
        for x, y in zip(args[:n], args[n:]):
            total = _add(total, _product(atom(x), atom(y), emit), emit)
    else:  # start + x0 + x1 + ..., where a start of 0.0 is no term
        start = args[0]
        for a in args[1:] if type(start) is not Value and start == 0.0 else args:
            total = _add(total, atom(a), emit)
    return total


def _add(total, t, emit):
    if total is None:
        return t
    return total + t if _literal(total) and _literal(t) else emit("add", [total, t])


def _literal(x):
    return not isinstance(x, str)


def _product(x, y, emit):
    return x * y if _literal(x) and _literal(y) else emit("mul", [x, y])
