"""`grad` and `value_and_grad` over pytrees of floats, mirroring `jax.grad`.

The transform works on a flat list of leaves; `tree_flatten` is the one thin wrapper that takes
nested lists, tuples and dicts apart and puts them back together, as in JAX.
"""

from numbers import Real

from .engine import Value, backward

__all__ = ["grad", "value_and_grad", "tree_flatten", "trace"]


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


def _argnums_tuple(argnums, nargs):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not isinstance(i, int) or not -nargs <= i < nargs:
            raise ValueError(f"argnums {argnums!r} out of range for a function of {nargs} argument(s)")
    return tuple(i % nargs for i in nums)


def trace(f, args, argnums):
    """Call f with the chosen arguments' leaves replaced by fresh Value leaves.

    Returns (out, [(unflatten, leaf_values)] per differentiated argument).
    """
    args = list(args)
    traced = []
    for i in argnums:
        leaves, unflatten = tree_flatten(args[i])
        for leaf in leaves:
            if isinstance(leaf, bool) or not isinstance(leaf, Real):
                raise TypeError(f"argument {i} has a leaf of type {type(leaf).__name__}; expected numbers")
        values = [Value(x) for x in leaves]
        args[i] = unflatten(values)
        traced.append((unflatten, values))
    return f(*args), traced


def value_and_grad(f, argnums=0):
    """Return a function computing (f(*args), df/d args[argnums]), the gradient shaped like the input."""

    def wrapped(*args):
        nums = _argnums_tuple(argnums, len(args))
        out, traced = trace(f, args, nums)
        if isinstance(out, Real) and not isinstance(out, bool):
            out = Value(out)  # a constant: every gradient is zero
        if not isinstance(out, Value):
            raise TypeError(f"grad requires f to return a scalar (a Value or a number), got {type(out).__name__}")
        cotangents = backward(out)
        grads = tuple(unflatten([cotangents.get(v, 0.0) for v in values]) for unflatten, values in traced)
        return out.data, grads[0] if isinstance(argnums, int) else grads

    return wrapped


def grad(f, argnums=0):
    """Return a function computing df/d args[argnums], shaped like that argument."""
    vg = value_and_grad(f, argnums)
    return lambda *args: vg(*args)[1]
