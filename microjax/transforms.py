"""The transforms, mirroring JAX's: `grad`, `value_and_grad`, `jvp`, `jacfwd`, `jacrev`, `hessian`.

Each transform traces f once, replacing the inputs' leaves with fresh Value leaves, then runs a pass
over the graph: reverse (cotangents) or forward (tangents). A transform called while another is tracing
is nested: its inputs are fresh leaves standing for the outer Values (never the outer nodes themselves,
so nested derivatives keep their variables apart), and its pass computes with Values, recorded in the
outer trace, so the outer transform differentiates the inner one's result. At top level the passes
compute with floats. Transforms work on flat lists of leaves; `tree_flatten` is the one thin wrapper
that takes nested lists, tuples and dicts apart and puts them back together, as in JAX.
"""

import functools
import gc
from numbers import Real

from .engine import Value, _unary
from .passes import backward, backward_nested, oldest, push_tangents, topological_order

__all__ = ["grad", "value_and_grad", "jvp", "jacfwd", "jacrev", "hessian", "tree_flatten", "trace"]

_fresh = _unary("copy")
_depth = 0  # how many transforms are tracing now (JAX keeps a stack of them); > 0 means nested


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


def tree_flatten(tree):
    """(leaves, unflatten): the leaves of nested lists/tuples/dicts in order, and the inverse."""
    leaves = []

    def take(node):
        if isinstance(node, (list, tuple)):
            return type(node), [take(child) for child in node]
        if isinstance(node, dict):
            return dict, {k: take(v) for k, v in node.items()}
        leaves.append(node)
        return None, None

    shape = take(tree)

    def unflatten(new_leaves):
        it = iter(new_leaves)

        def build(spec):
            kind, children = spec
            if kind is None:
                return next(it)
            if kind is dict:
                return {k: build(c) for k, c in children.items()}
            return kind(build(c) for c in children)

        return build(shape)

    return leaves, unflatten


def _structure(tree):
    leaves, unflatten = tree_flatten(tree)
    return unflatten([None] * len(leaves))


def _argnums_tuple(argnums, nargs):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not isinstance(i, int) or not -nargs <= i < nargs:
            raise ValueError(f"argnums {argnums!r} out of range for a function of {nargs} argument(s)")
    return tuple(i % nargs for i in nums)


def _is_number(x):
    return type(x) is Value or (isinstance(x, Real) and not isinstance(x, bool))


def _leaf(x, i):
    if type(x) is Value:
        return _fresh(x)  # a new node, so the derivative is with respect to this input alone
    if not _is_number(x):
        raise TypeError(f"argument {i} has a leaf of type {type(x).__name__}; expected numbers")
    return Value(x)


def trace(f, args, argnums):
    """Call f with the chosen arguments' leaves replaced by fresh Value leaves.

    Returns (out, [(unflatten, leaf_values)] per differentiated argument).
    """
    global _depth
    args = list(args)
    traced = []
    for i in argnums:
        leaves, unflatten = tree_flatten(args[i])
        values = [_leaf(x, i) for x in leaves]
        args[i] = unflatten(values)
        traced.append((unflatten, values))
    _depth += 1
    try:
        return f(*args), traced
    finally:
        _depth -= 1


def _check_numbers(xs, what):
    for x in xs:
        if not _is_number(x):
            raise TypeError(f"{what} must be numbers (a Value or a number per leaf), got {type(x).__name__}")


def _primal(x):
    """An output as the caller sees it: a float at top level, the Value itself inside another transform."""
    if type(x) is Value:
        return x if _depth else x.data
    return float(x)


def _cotangents(out, leaves):
    """d(out)/d(leaf) for each leaf of the trace; out is a Value or a number (a constant: all zeros)."""
    if type(out) is not Value:
        return {}
    return backward_nested(out, leaves) if _depth else backward(out)


def _graph(outs, leaves):
    """The nodes between a trace's inputs and its outputs, in creation order."""
    return topological_order([o for o in outs if type(o) is Value], since=oldest(leaves))


def _per_argument(traced, derivative_of, argnums):
    """The derivatives of each traced leaf, put back in the shape of its argument (a tuple for tuple argnums)."""
    per_arg = tuple(unflatten([derivative_of.get(v, 0.0) for v in values]) for unflatten, values in traced)
    return per_arg[0] if isinstance(argnums, int) else per_arg


def value_and_grad(f, argnums=0):
    """Return a function computing (f(*args), df/d args[argnums]), the gradient shaped like the input."""

    @pauses_cycle_collection
    def wrapped(*args):
        out, traced = trace(f, args, _argnums_tuple(argnums, len(args)))
        if not _is_number(out):
            raise TypeError(f"grad requires f to return a scalar (a Value or a number), got {type(out).__name__}")
        leaves = [v for _, values in traced for v in values]
        return _primal(out), _per_argument(traced, _cotangents(out, leaves), argnums)

    return wrapped


def grad(f, argnums=0):
    """Return a function computing df/d args[argnums], shaped like that argument."""
    vg = value_and_grad(f, argnums)
    return lambda *args: vg(*args)[1]


@pauses_cycle_collection
def jvp(f, primals, tangents):
    """(f(*primals), the derivative of f at primals along tangents): forward mode, as `jax.jvp`.

    `primals` and `tangents` are tuples of the same length whose entries have the same structure."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument of f)")
    if len(primals) != len(tangents) or any(_structure(p) != _structure(t) for p, t in zip(primals, tangents)):
        raise ValueError("jvp: primals and tangents must have the same structure")
    out, traced = trace(f, primals, tuple(range(len(primals))))
    seeds = {}
    for (_, values), t in zip(traced, tangents):
        leaves = tree_flatten(t)[0]
        _check_numbers(leaves, "jvp: tangents")
        seeds.update((v, _primal(tv)) for v, tv in zip(values, leaves))
    outs, unflatten = tree_flatten(out)
    _check_numbers(outs, "the outputs of f")
    found = push_tangents(_graph(outs, seeds), seeds, bool(_depth))
    return unflatten([_primal(o) for o in outs]), unflatten([found.get(o, 0.0) for o in outs])


def jacrev(f, argnums=0):
    """The Jacobian by reverse mode, one backward pass per output: for each output leaf, the derivatives
    shaped like args[argnums] (JAX's structure: outputs outside, inputs inside)."""

    @pauses_cycle_collection
    def jacobian(*args):
        out, traced = trace(f, args, _argnums_tuple(argnums, len(args)))
        leaves = [v for _, values in traced for v in values]
        outs, unflatten = tree_flatten(out)
        _check_numbers(outs, "the outputs of f")
        return unflatten([_per_argument(traced, _cotangents(o, leaves), argnums) for o in outs])

    return jacobian


def jacfwd(f, argnums=0):
    """The Jacobian by forward mode, one tangent pass per input leaf; the same structure as `jacrev`."""

    @pauses_cycle_collection
    def jacobian(*args):
        out, traced = trace(f, args, _argnums_tuple(argnums, len(args)))
        outs, unflatten = tree_flatten(out)
        _check_numbers(outs, "the outputs of f")
        leaves = [v for _, values in traced for v in values]
        order = _graph(outs, leaves)
        columns = {v: push_tangents(order, {v: 1.0}, bool(_depth)) for v in leaves}
        return unflatten([_per_argument(traced, {v: col.get(o, 0.0) for v, col in columns.items()}, argnums)
                          for o in outs])

    return jacobian


def hessian(f, argnums=0):
    """The matrix of second derivatives, jacfwd(jacrev(f)) as in JAX: for a list input, a list of lists."""
    return jacfwd(jacrev(f, argnums), argnums)
