"""Staging: a function traced abstractly into a program of primitive equations (a jaxpr), which
`make_jaxpr` prints in JAX's notation and `jit` and `vmap` run.

`stage(f, args)` calls f with a `Tracer` (a value of known type and no number) for each leaf of its
arguments; every primitive applied to a Tracer records one equation. So a Python `if` on a traced value
is an error (there is no number to branch on: `microjax.where` and `microjax.cond` branch), and what
is recorded is f's whole program, with whatever transforms f applies inside it (grad's backward pass,
jvp's tangents) already written out as equations. The printer lists every recorded equation, in the
order JAX records them (a derivative rule's equations just after the equation they differentiate), an
unused result as `_`.
"""

import heapq
from dataclasses import dataclass, field
from numbers import Real

from .core import Trace, Tracer, Value, tracer
from .tree_util import tree_flatten

__all__ = ["make_jaxpr", "stage", "program", "Jaxpr", "Eqn"]


def _input(x, where, bools=True):
    if bools and (type(x) is bool or (type(x) is Tracer and x.dtype == "bool")):
        return tracer("", (), "bool")
    if isinstance(x, (Value, Real)):
        return tracer("", (), "f64")
    raise TypeError(f"Argument {x!r} of type {type(x)} at {where} is not a valid JAX type: the leaves of a "
                    "traced function's arguments must be numbers (or Values)")


@dataclass
class Staged:
    """A traced function: its trace (every equation recorded), its inputs (one Tracer per argument leaf),
    its outputs' leaves and their tree."""

    trace: Trace
    inputs: list
    outs: list
    out_tree: object


def stage(f, args, kwargs=None, static_argnums=(), bools=True):
    """Trace f(*args, **kwargs) with a Tracer for each leaf of the arguments not in static_argnums (a bool
    leaf a bool Tracer, unless `bools` is false: then every leaf is a float64 input)."""
    kwargs = kwargs or {}
    dynamic = [a for i, a in enumerate(args) if i not in static_argnums]
    leaves, tree = tree_flatten((dynamic, kwargs))
    with Trace() as trace:
        inputs = [_input(x, "argument", bools) for x in leaves]
        dyn, kw = tree.unflatten(inputs)
        it = iter(dyn)
        full = [a if i in static_argnums else next(it) for i, a in enumerate(args)]
        out = f(*full, **kw)
        outs, out_tree = tree_flatten(out)
    for o in outs:
        if not isinstance(o, (Value, Real)):
            raise TypeError(f"a traced function must return numbers (a pytree of them), got {type(o).__name__} {o!r}")
    return Staged(trace, inputs, outs, out_tree)


def program(staged):
    """The recorded equations the outputs need (no unused ones), in creation order, which is topological."""
    trace, inputs = staged.trace, set(staged.inputs)
    stack = [o for o in staged.outs if _eqn_of(o, trace, inputs)]
    seen = set(stack)
    while stack:
        for p in stack.pop().parents:
            if p not in seen and _eqn_of(p, trace, inputs):
                seen.add(p)
                stack.append(p)
    return sorted(seen, key=lambda t: t.serial)


def _eqn_of(x, trace, inputs):
    return type(x) is Tracer and x.trace is trace and x.op != "literal" and x not in inputs


# -- printing ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Eqn:
    """One equation: `outvar:dtype[] = primitive[params] invars...`; invars are names or literals."""

    primitive: str
    invars: tuple
    outvar: str
    params: dict = field(default_factory=dict)
    dtype: str = "f64"

    def __str__(self):
        params = "".join(f"[{k}={v}]" for k, v in self.params.items())
        return f"{self.outvar}:{self.dtype}[] = {self.primitive}{params} {' '.join(map(_atom, self.invars))}"


@dataclass(frozen=True)
class Jaxpr:
    invars: tuple
    eqns: tuple
    outvars: tuple
    in_dtypes: tuple = ()
    constvars: tuple = ()  # values of an enclosing trace that the program reads

    def __str__(self):  # as JAX's pretty-printer: on one line when that fits in 80 columns
        dtypes = self.in_dtypes or ("f64",) * len(self.invars)
        consts = " ".join(f"{v}:f64[]" for v in self.constvars)
        head = f"{{ lambda {consts + ' ' if consts else ''}; {' '.join(f'{v}:{d}[]' for v, d in zip(self.invars, dtypes))}. let"
        atoms = [_atom(v) for v in self.outvars]
        outs = f"({atoms[0]},)" if len(atoms) == 1 else f"({', '.join(atoms)})"
        line = f"{head} {'; '.join(map(str, self.eqns))} in {outs} }}"
        if len(line) <= 80:
            return line
        return "\n".join([head, *(f"    {e}" for e in self.eqns), f"  in {outs} }}"])


def _atom(x):
    if isinstance(x, str):
        return x
    return f"{x!r}:bool[]" if type(x) is bool else f"{float(x)!r}:f64[]"


def _name(n):
    """JAX's variable names: a, b, ..., z, ba, bb, ..."""
    s = ""
    while True:
        s = chr(ord("a") + n % 26) + s
        n //= 26
        if n == 0:
            return s


def _display(t):
    """(primitive, params, operands shown) of an equation as JAX writes it."""
    op, args = t.op, t.args
    if op == "integer_pow":
        return op, {"y": args[1]}, args[:1]
    if op == "relu":  # jax.nn.relu is max(x, 0.0) (JAX wraps it in a custom_jvp_call)
        return "max", {}, (args[0], 0.0)
    if op in ("custom_jvp_call", "custom_vjp_call"):
        rule = args[0]
        return op, {"name": rule.name}, tuple(a for a in args[2:] if isinstance(a, (Value, Real)))
    return op, {}, args


def _print_order(eqns):
    """The equations in an order JAX would print them: creation order, except that the equations a
    derivative rule made for a node come right after that node's own (as JAX's tracer records them)."""
    members, keys = set(eqns), {}

    def key(t):
        """After its anchor, before the anchor's next sibling; among the equations anchored to one node,
        an enclosing transform's (a later pass) first, as JAX's tracer records them: the outer transform
        handles each op the inner one emits as it is emitted. A few deep: one step per nesting."""
        if t not in keys:
            a = t.anchor
            if a is None or a[0] not in members:
                keys[t] = ((0, t.serial),)
            else:
                keys[t] = key(a[0]) + ((-a[1], t.serial),)
        return keys[t]

    deps = {t: [p for p in t.parents if p in members] for t in eqns}
    users = {t: [] for t in eqns}
    for t, ps in deps.items():
        for p in ps:
            users[p].append(t)
    waiting = {t: len(ps) for t, ps in deps.items()}
    ready = [(key(t), t.serial, t) for t in eqns if not waiting[t]]
    heapq.heapify(ready)
    out = []
    while ready:
        _, _, t = heapq.heappop(ready)
        out.append(t)
        for u in users[t]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (key(u), u.serial, u))
    return out


def to_jaxpr(staged):
    """The staged program as a printable `Jaxpr`: every recorded equation, an unused result named `_`."""
    trace, inputs = staged.trace, staged.inputs

    def resolve(x):  # a nested transform's input (copy) stands for the value it copies
        while type(x) is Tracer and x.op == "copy" and x.trace is trace:
            x = x.args[0]
        return x

    eqns = _print_order([t for t in trace.eqns if t.op != "copy"])
    used = set()
    for t in eqns:
        used.update(resolve(a) for a in _display(t)[2] if type(a) is Tracer)
    used.update(resolve(o) for o in staged.outs if type(o) is Tracer)
    mine = set(eqns) | set(inputs)
    consts = [x for x in used if type(x) is Tracer and x.op != "literal" and x not in mine]  # JAX's constvars
    consts.sort(key=lambda x: x.serial)
    names, counter = {}, iter(range(10**9))
    for x in consts + list(inputs):
        names[x] = _name(next(counter))

    def atom(x):
        x = resolve(x)
        if type(x) is Tracer:
            return x.args[0] if x.op == "literal" else names[x]
        return x.data if isinstance(x, Value) else x

    out_eqns = []
    for t in eqns:
        prim, params, shown = _display(t)
        invars = tuple(atom(a) for a in shown)
        names[t] = _name(next(counter)) if t in used else "_"
        out_eqns.append(Eqn(prim, invars, names[t], params, t.dtype))
    return Jaxpr(tuple(names[x] for x in inputs), tuple(out_eqns), tuple(atom(o) for o in staged.outs),
                 tuple(x.dtype for x in inputs), tuple(names[x] for x in consts))


def make_jaxpr(fun, static_argnums=()):
    """A function that traces fun abstractly on its arguments (each leaf an input; kwargs too) and returns
    the program as a `Jaxpr`: print it to read it in JAX's notation, beside `jax.make_jaxpr`."""
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def jaxpr(*args, **kwargs):
        return to_jaxpr(stage(fun, args, kwargs, tuple(i % len(args) for i in nums)))

    return jaxpr
