"""`vmap(f)`: f written for one example, run for a batch, as `jax.vmap` does with an array's leading axis.

microjax has no arrays, so the mapped axis is a Python list: with `in_axes=0` an argument is a list of B
examples of one structure (pytrees), with `None` it is shared by all of them, and the result is a list of
B outputs (`out_axes=0`; with `out_axes=None` the output must not depend on the mapped arguments).
`in_axes` may also be a pytree prefix of an argument ({"w": None, "b": 0}). A list of lists maps twice
(`vmap(vmap(f))`).

f is traced once, on one example's structure (`jaxpr.stage`), and the program is run by a batching
interpreter: each equation is applied to the whole batch where an operand is batched, once where none
is. So work that depends only on shared arguments is done once, and the equations apply to whatever the
leaves are: floats, or the Values and Tracers of an enclosing grad, jvp or jit.
"""

import functools

from .core import Tracer
from .jaxpr import program, stage
from .lax import apply
from .tree_util import tree_flatten

__all__ = ["vmap"]


def vmap(fun, in_axes=0, out_axes=0):
    """A function mapping fun over lists (see the module's docstring), as `jax.vmap`."""
    if out_axes not in (0, None):
        raise ValueError(f"vmap out_axes must be 0 or None (microjax maps over Python lists), got {out_axes!r}")

    @functools.wraps(fun)
    def vmapped(*args, **kwargs):
        if isinstance(in_axes, (tuple, list)) and len(in_axes) != len(args):
            raise ValueError("vmap in_axes must be an int, None, or a tuple of entries corresponding to the "
                             f"positional arguments passed to the function, but got len(in_axes)={len(in_axes)}, "
                             f"len(args)={len(args)}")
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        split = [_split(a, spec, f"argument {i}") for i, (a, spec) in enumerate(zip(args, axes))]
        kw = {k: _split(kwargs[k], 0, f"keyword argument {k!r}") for k in sorted(kwargs)}  # JAX maps them on axis 0
        sizes = {n for _, leaves in [*split, *kw.values()] for batched, n, _ in leaves if batched}
        if not sizes:
            raise ValueError("vmap must have at least one non-None value in in_axes")
        if len(sizes) > 1:
            raise ValueError(f"vmap got inconsistent sizes for the lists to be mapped: {sorted(sizes)}")
        size = sizes.pop()
        if size == 0:
            raise ValueError("vmap of empty lists: microjax traces f on one example, so a batch needs one")
        templates = [t for t, _ in split]
        staged = stage(fun, templates, {k: t for k, (t, _) in kw.items()})
        leaves = [leaf for _, ls in [*split, *kw.values()] for leaf in ls]
        outs = _run(staged, leaves, size)
        if out_axes is None:
            if any(batched for batched, _ in outs):
                raise ValueError("at vmap out_axes, got axis spec None but output was batched on axis 0")
            return staged.out_tree.unflatten([v for _, v in outs])
        return [staged.out_tree.unflatten([v[i] if batched else v for batched, v in outs]) for i in range(size)]

    return vmapped


def _split(arg, spec, where):
    """(a template of one example's structure, [(batched, size, values)] per leaf of it): spec 0 takes
    the argument apart along its list, None shares it, a container of specs walks into the argument."""
    if spec is None:
        leaves, tree = tree_flatten(arg)
        return tree.unflatten(leaves), [(False, None, x) for x in leaves]
    if spec == 0 and type(spec) is int:
        if not isinstance(arg, list):
            raise ValueError(f"vmap was asked to map {where} over a list (in_axes=0), but it is a "
                             f"{type(arg).__name__}: the batch is a Python list of examples")
        per = [tree_flatten(x) for x in arg]
        trees = {tree for _, tree in per}
        if len(trees) > 1:
            raise ValueError(f"vmap: the examples of {where} must share one structure, got {sorted(map(str, trees))}")
        if not per:
            return [], [(True, 0, [])]
        tree = per[0][1]
        return tree.unflatten(per[0][0]), [(True, len(arg), [ls[j] for ls, _ in per]) for j in range(tree.num_leaves)]
    if isinstance(spec, int) or not isinstance(spec, (tuple, list, dict)):
        raise ValueError(f"vmap in_axes entries are 0 or None (microjax maps over Python lists), got {spec!r}")
    spec_leaves, spec_tree = tree_flatten(spec, is_leaf=lambda s: s is None)
    parts = spec_tree.flatten_up_to(arg)
    out = [_split(p, s, where) for p, s in zip(parts, spec_leaves)]
    return spec_tree.unflatten([t for t, _ in out]), [leaf for _, ls in out for leaf in ls]


def _run(staged, leaves, size):
    """The batching interpreter: [(batched, value or list of values)] for each output leaf."""
    env = {t: (batched, values) for t, (batched, _, values) in zip(staged.inputs, leaves)}

    def read(x):
        if type(x) is Tracer:
            if x in env:
                return env[x]
            if x.op == "literal":
                return False, x.args[0]
        return False, x

    for t in program(staged):
        operands = [read(a) for a in t.args]
        if any(batched for batched, _ in operands):
            env[t] = True, [apply(t.op, [v[i] if b else v for b, v in operands]) for i in range(size)]
        else:
            env[t] = False, apply(t.op, [v for _, v in operands])
    return [read(o) for o in staged.outs]
