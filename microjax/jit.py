"""`jit(f)`: trace f once into a program, and run the program on later calls without running f's Python.

The first call with a new input structure (or new static arguments) stages f (`jaxpr.stage`): abstract
Tracers stand for the inputs, so what is recorded is f's whole program, whatever transforms f applies
inside it. That program is then compiled: on floats, into one straight-line Python function (each
equation a line or part of an expression, IEEE arithmetic inline, no nodes and no dispatch), which is
what makes a jitted call fast; on Values or Tracers (jit inside grad, vmap or another jit), it is
interpreted equation by equation, each applied as a primitive so that the enclosing transform sees it.
"""

import functools
import math

from .config import config
from .core import PRIMITIVES, Tracer, Value
from .jaxpr import program, stage
from .lax import apply
from .tree_util import tree_flatten

__all__ = ["jit"]


def jit(fun, static_argnums=()):
    """A function that computes fun, tracing it once per input structure and value of the static arguments
    (those must be hashable), as `jax.jit`."""
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    cache = {}

    def program_for(args, kwargs):
        nums = _static(statics, len(args))
        leaves, tree = tree_flatten(([a for i, a in enumerate(args) if i not in nums], kwargs))
        key = (tree, tuple(args[i] for i in nums))
        try:
            entry = cache.get(key)
        except TypeError as e:
            raise ValueError(f"Non-hashable static arguments are not supported: {e} (static_argnums={statics})") from None
        if entry is None:
            entry = Compiled(stage(fun, args, kwargs, nums, bools=False))
            if entry.cacheable:
                cache[key] = entry
        return entry, leaves

    @functools.wraps(fun)
    def jitted(*args, **kwargs):
        entry, leaves = program_for(args, kwargs)
        return entry(leaves)

    jitted._cache_size = lambda: len(cache)  # as JAX's: how many programs are kept, one per structure seen
    jitted.lower = lambda *args, **kwargs: program_for(args, kwargs)[0]  # as JAX's: .lower(x).as_text()
    return jitted


def _static(statics, nargs):
    for i in statics:
        if not -nargs <= i < nargs:
            raise ValueError(f"Jitted function has static_argnums={statics}, but only accepts {nargs} positional "
                             "arguments.")
    return tuple(i % nargs for i in statics)


class Compiled:
    """A staged program, callable on its inputs' leaves: compiled to Python for floats, interpreted else."""

    def __init__(self, staged):
        self.out_tree = staged.out_tree
        slots = {t: i for i, t in enumerate(staged.inputs)}
        self.n_inputs, self.steps, seen = len(slots), [], {}
        for t in program(staged):
            refs = tuple(_ref(a, slots) for a in t.args)
            key = (t.op, *(r if type(r) is int else (type(r.value), _hashable(r.value)) for r in refs))
            if key in seen:  # the same op on the same operands: computed once (rules recompute residuals)
                slots[t] = seen[key]
                continue
            seen[key] = slots[t] = self.n_inputs + len(self.steps)
            self.steps.append((t.op, refs))
        self.outs = tuple(_ref(o, slots) for o in staged.outs)
        refs = [r for _, rs in self.steps for r in rs] + list(self.outs)
        # a program that reads Values or Tracers of an enclosing transform is good for this call only
        self.cacheable = not any(type(r) is _Const and isinstance(r.value, Value) for r in refs)
        self._python = None

    def __call__(self, leaves):
        kinds = set(map(type, leaves))
        if not kinds - _NUMBERS and self.cacheable and not config.checking:
            return self.out_tree.unflatten(self.python()(leaves if kinds <= {float} else [float(x) for x in leaves]))
        return self.out_tree.unflatten(self.interpret(leaves))

    def python(self):
        """The program compiled for float inputs (once, on first use)."""
        if self._python is None:
            self._python = to_python(self.n_inputs, self.steps, self.outs)
        return self._python

    def as_text(self):
        """The Python the program compiles to (where JAX's `lower(x).as_text()` shows what XLA is given)."""
        return self.python().source

    def interpret(self, leaves):
        """The program's outputs, each equation applied as a primitive: to Values and Tracers, the nodes
        and equations of the enclosing transform; to floats, the same numbers as the compiled Python."""
        env = [x if isinstance(x, Value) else float(x) for x in leaves]
        for op, refs in self.steps:
            env.append(apply(op, [env[r] if type(r) is int else r.value for r in refs]))
        return [env[r] if type(r) is int else r.value for r in self.outs]


_NUMBERS = {float, int, bool}


class _Const:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return id(v)


def _ref(x, slots):
    """An operand as a slot of the program (an int) or a constant."""
    if type(x) is Tracer:
        if x.op == "literal":
            return _Const(x.args[0])
        if x in slots:
            return slots[x]
    return _Const(x)


# -- straight-line Python for float inputs --------------------------------------------------------------
_INFIX = {"add": "+", "add_any": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
          "eq": "==", "ne": "!="}
_MAX_DEPTH = 40  # nested expression depth before a result gets its own line (CPython's compiler recurses)


def _expression(op, operands):
    """Python for one equation, given its operands' Python (names, literals or parenthesized expressions)."""
    if op in _INFIX:
        return f"({operands[0]} {_INFIX[op]} {operands[1]})"
    if op == "neg":
        return f"(-{operands[0]})"
    if op == "select_n" and len(operands) == 3:
        return f"({operands[2]} if {operands[0]} else {operands[1]})"
    return f"_{op}({', '.join(operands)})"


def to_python(n_inputs, steps, outs):
    """Compile the program to one Python function of the input floats. An equation used once is inlined
    into the one that uses it (to a bounded depth); an identity (copy, stop_gradient, x * 1.0) or an
    equation of constants costs no line; the rest are local variables."""
    uses = [0] * (n_inputs + len(steps))
    for _, refs in steps:
        for r in refs:
            if type(r) is int:
                uses[r] += 1
    for r in outs:
        if type(r) is int:
            uses[r] += 2  # an output always gets a name
    consts, lines, inline, alias, depth = [], [], {}, {}, {}

    def operand(r):
        if type(r) is not int:
            return _literal(r.value, consts)
        if r in alias:
            return alias[r]
        return inline.pop(r) if r in inline else f"v{r}"

    for k, (op, refs) in enumerate(steps):
        slot = n_inputs + k
        if all(type(r) is not int for r in refs) and op in PRIMITIVES and PRIMITIVES[op].value is not None:
            alias[slot] = _literal(apply(op, [r.value for r in refs]), consts)  # constants: folded once
            continue
        same = _identity(op, refs)
        if same is not None:
            text = operand(same)
            if _simple(text):
                alias[slot] = text
                continue
            expr = text
        else:
            expr = _expression(op, [operand(r) for r in refs])
        d = 1 + max((depth.get(r, 0) for r in refs if type(r) is int), default=0)
        if uses[slot] == 1 and d < _MAX_DEPTH:
            inline[slot], depth[slot] = expr, d
        else:
            lines.append(f"    v{slot} = {expr}")
    result = ", ".join(operand(r) for r in outs)
    head = f"    {', '.join(f'v{i}' for i in range(n_inputs))}{',' if n_inputs == 1 else ''} = x\n" if n_inputs else ""
    source = f"def program(x, c):\n{head}" + "\n".join(lines) + f"\n    return ({result}{',' if len(outs) == 1 else ''})\n"
    namespace = {f"_{name}": prim.value for name, prim in PRIMITIVES.items() if prim.value is not None}
    exec(compile(source, "<microjax.jit>", "exec"), namespace)
    fn = namespace["program"]
    program = functools.partial(fn, c=consts)
    program.source = source
    return program


def _identity(op, refs):
    """The operand an equation passes on unchanged, or None: x * 1.0 is x exactly in IEEE arithmetic."""
    if op in ("copy", "stop_gradient"):
        return refs[0]
    if op in ("custom_jvp_call", "custom_vjp_call"):
        return refs[2]
    if op == "mul":
        for a, b in (refs, refs[::-1]):
            if type(b) is _Const and type(b.value) is float and b.value == 1.0:
                return a
    return None


def _simple(text):
    return text.isidentifier() or text.startswith("c[") or text.replace(".", "").replace("-", "").isalnum()


def _literal(v, consts):
    if type(v) is float and math.isfinite(v) or type(v) is bool or type(v) is int:
        return repr(v)
    consts.append(v)
    return f"c[{len(consts) - 1}]"
