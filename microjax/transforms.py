"""The differentiation transforms, mirroring JAX's; reverse mode here (`grad`, `value_and_grad`, `vjp`,
`jacrev`), forward mode in `forward.py` (`jvp`, `linearize`, `jacfwd`, `hessian`).

Each traces f once, replacing the differentiated inputs' leaves with fresh Value leaves, then runs a
pass over the graph: reverse (cotangents) or forward (tangents). A transform called while another is
tracing is nested: its inputs are fresh leaves standing for the outer Values (never the outer nodes
themselves, so nested derivatives keep their variables apart), and its pass computes with nodes,
recorded in the outer trace, so the outer transform differentiates the inner one's result. Under jit
or make_jaxpr the same happens with Tracers. At top level the passes compute with floats. Arguments
and results are pytrees (`tree_util`), paired by structure, with JAX's TypeErrors for what JAX refuses.
"""

import functools
import gc
import operator
from numbers import Integral, Real

from .core import Tracer, Value, bind, literal, state
from .passes import backward, linearize_graph, reverse_nested
from .tree_util import tree_flatten, tree_map

__all__ = ["grad", "value_and_grad", "vjp", "jacrev", "trace"]


def pauses_cycle_collection(transform):
    """Run `transform` with Python's cycle collector paused. A graph holds no cycles (a node's parents
    are older than it), so the collections that allocating its nodes triggers find nothing in it, yet they
    took 40% of a first-order pass on micrograd's demo; reference counting frees every node as before."""

    @functools.wraps(transform)
    def run(*args, **kwargs):
        if not gc.isenabled():  # paused already, by an enclosing transform or by the caller
            return transform(*args, **kwargs)
        gc.disable()
        try:
            return transform(*args, **kwargs)
        finally:
            gc.enable()

    return run


def _argnums(argnums, nargs):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    nums = tuple(operator.index(i) for i in nums)  # JAX's TypeError for a non-integer
    if not nums:
        raise TypeError("argnums must name at least one argument to differentiate, got ()")
    if max(nums) >= nargs or min(nums) < -nargs:
        raise TypeError(f"differentiating with respect to argnums={argnums} requires at least "
                        f"{max(max(nums) + 1, -min(nums))} positional arguments to be passed by the caller, "
                        f"but got only {nargs} positional arguments.")
    return tuple(i % nargs for i in nums)


def _fresh(x, who, where):
    """A new leaf to differentiate with respect to: standing for x (a Value or Tracer) or holding it."""
    if type(x) is Tracer or type(x) is Value:
        if type(x) is Tracer and x.dtype != "f64":
            raise TypeError(f"{who} requires real-valued inputs, but {where} is a traced bool")
        return bind("copy", x)
    if isinstance(x, Integral):  # bool is one
        raise TypeError(f"{who} requires real-valued inputs (floats), but {where} is {type(x).__name__} {x!r}: "
                        f"write {float(x)!r} (JAX refuses integer and bool inputs here too)")
    if not isinstance(x, Real):
        raise TypeError(f"Argument {x!r} of type {type(x)} is not a valid JAX type ({who}: {where} must be a "
                        "number, a Value, or a pytree of them)")
    return Value(x)


def trace(f, args, kwargs, argnums, who="grad"):
    """Call f with the chosen arguments' leaves replaced by fresh leaves (kwargs passed through).

    Returns (out, [(treedef, leaves)] per differentiated argument, nested)."""
    args, traced = list(args), []
    for i in argnums:
        leaves, treedef = tree_flatten(args[i])
        fresh = [_fresh(x, who, f"argument {i}") for x in leaves]
        args[i] = treedef.unflatten(fresh)
        traced.append((treedef, fresh))
    nested = state.depth > 0 or any(type(v) is Tracer for _, fresh in traced for v in fresh)
    state.depth += 1
    try:
        out = f(*args, **kwargs)
    finally:
        state.depth -= 1
    return out, traced, nested


def _primal(x):
    """An output as the caller sees it: a float at top level, the node itself inside another transform
    or under staging."""
    if type(x) is Value:
        return x if state.depth else x.data
    if type(x) is Tracer:
        return x
    return float(x) if isinstance(x, Real) and not isinstance(x, bool) else x


def _number_leaves(leaves, what):
    for x in leaves:
        if isinstance(x, Value):
            if type(x) is Tracer and x.dtype != "f64":
                raise TypeError(f"{what} must be real numbers, got a traced bool")
        elif isinstance(x, Integral) or not isinstance(x, Real):
            raise TypeError(f"{what} must be real (float) numbers, got {type(x).__name__} {x!r}")


def _split_aux(out, has_aux):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError("expected function with aux output to return a two-element tuple, but got type "
                        f"{type(out).__name__} with value {out!r}")
    return out[0], tree_map(_primal, out[1])


def _scalar(out):
    if isinstance(out, Value):
        if type(out) is Tracer and out.dtype != "f64":
            raise TypeError("grad requires real-valued outputs, but the output is a traced bool")
        return out
    if isinstance(out, Integral):
        raise TypeError(f"grad requires real-valued outputs (floats), but got {type(out).__name__} {out!r}: "
                        "for a constant, return a float (JAX refuses integer outputs too)")
    if not isinstance(out, Real):
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was {out!r}.")
    return out


def _staged(outs):
    return any(type(o) is Tracer for o in outs)


def _reverse(outs, leaves, nested):
    """A function {output: cotangent} -> {leaf: d/d leaf} over the graph between leaves and outputs: the
    recorded floats at top level; nested or staged, the graph linearized once and transposed per call."""
    if not nested:
        return lambda seeds: backward(seeds)
    linear = []

    def run(seeds):
        if not linear:
            linear.append(linearize_graph([o for o in outs if isinstance(o, Value)], leaves))
        return dict(zip(leaves, reverse_nested(linear[0], seeds)))

    return run


def _seed(out):
    """The cotangent 1.0 that starts a reverse pass: a staged literal when the output is staged (JAX stages
    what is done with it: `mul 1.0 b`), else the float."""
    return literal(1.0) if type(out) is Tracer else 1.0


def _per_argument(traced, derivative_of, argnums):
    """Each traced argument's derivatives put back in its shape (a tuple for tuple argnums); 0 where none."""
    per_arg = tuple(treedef.unflatten([_zero_if_none(derivative_of.get(v)) for v in fresh])
                    for treedef, fresh in traced)
    return per_arg[0] if isinstance(argnums, int) else per_arg


def _zero_if_none(d):
    return 0.0 if d is None else _primal(d)


def value_and_grad(fun, argnums=0, has_aux=False):
    """A function computing (f(*args), df/d args[argnums]), the gradient shaped like the input; with
    has_aux, f returns (value, aux) and the result is ((value, aux), gradient). Keyword arguments pass
    through undifferentiated."""

    @functools.wraps(fun)
    @pauses_cycle_collection
    def value_and_grad_f(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        out, traced, nested = trace(fun, args, kwargs, nums)
        out, aux = _split_aux(out, has_aux)
        out = _scalar(out)
        leaves = [v for _, fresh in traced for v in fresh]
        grads = _reverse([out], leaves, nested or _staged([out]))({out: _seed(out)}) if isinstance(out, Value) else {}
        value = _primal(out)
        return ((value, aux) if has_aux else value), _per_argument(traced, grads, argnums)

    return value_and_grad_f


def grad(fun, argnums=0, has_aux=False):
    """A function computing df/d args[argnums], shaped like that argument (with has_aux: (gradient, aux))."""
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        (value, aux), g = vg(*args, **kwargs) if has_aux else ((None, None), vg(*args, **kwargs)[1])
        return (g, aux) if has_aux else g

    return grad_f


@pauses_cycle_collection
def vjp(fun, *primals, has_aux=False):
    """(f(*primals), f_vjp[, aux]): f_vjp(cotangent shaped like the output) is the tuple of cotangents
    of the primals, as `jax.vjp`. f is traced once; f_vjp can be called any number of times."""
    out, traced, nested = trace(fun, primals, {}, range(len(primals)), "vjp")
    out, aux = _split_aux(out, has_aux)
    outs, out_tree = tree_flatten(out)
    _number_leaves(outs, "the outputs of f")
    leaves = [v for _, fresh in traced for v in fresh]
    reverse = _reverse(outs, leaves, nested or _staged(outs))

    def f_vjp(cotangent):
        cts = out_tree.flatten_up_to(cotangent)
        _number_leaves(cts, "the cotangents")
        seeds = {}
        for o, c in zip(outs, cts):
            if isinstance(o, Value):
                seeds[o] = seeds[o] + c if o in seeds else c
        grads = reverse({o: c if isinstance(c, Value) else float(c) for o, c in seeds.items()}) if seeds else {}
        return tuple(treedef.unflatten([_zero_if_none(grads.get(v)) for v in fresh]) for treedef, fresh in traced)

    primal = out_tree.unflatten([_primal(o) for o in outs])
    return (primal, f_vjp, aux) if has_aux else (primal, f_vjp)


def jacrev(fun, argnums=0, has_aux=False):
    """The Jacobian by reverse mode, one backward pass per output leaf: for each, the derivatives shaped
    like args[argnums] (JAX's structure: outputs outside, inputs inside)."""

    @functools.wraps(fun)
    @pauses_cycle_collection
    def jacobian(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        out, traced, nested = trace(fun, args, kwargs, nums, "jacrev")
        out, aux = _split_aux(out, has_aux)
        outs, out_tree = tree_flatten(out)
        _number_leaves(outs, "the outputs of f")
        leaves = [v for _, fresh in traced for v in fresh]
        reverse = _reverse(outs, leaves, nested or _staged(outs))
        jac = out_tree.unflatten([_per_argument(traced, reverse({o: _seed(o)}) if isinstance(o, Value) else {},
                                                argnums) for o in outs])
        return (jac, aux) if has_aux else jac

    return jacobian
