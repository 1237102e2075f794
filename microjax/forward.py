"""Forward mode, mirroring JAX's: `jvp`, `linearize`, `jacfwd`, and `hessian` (jacfwd of jacrev).

f is traced once (`transforms.trace`), then tangents are pushed through its graph from the inputs: with
the recorded floats at top level, by each primitive's rule when nested or staged.
"""

import functools

from .core import Value
from .passes import graph_order, push_tangents
from .transforms import (_argnums, _number_leaves, _per_argument, _primal, _split_aux, _staged, _zero_if_none,
                         jacrev, pauses_cycle_collection, trace)
from .tree_util import tree_flatten

__all__ = ["jvp", "linearize", "jacfwd", "hessian"]


def _check_jvp_args(primals, tangents):
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("primal and tangent arguments to jvp must be tuples or lists; found "
                        f"{type(primals).__name__} and {type(tangents).__name__}.")
    p_tree, t_tree = tree_flatten(tuple(primals))[1], tree_flatten(tuple(tangents))[1]
    if p_tree != t_tree:
        raise TypeError("primal and tangent arguments to jvp must have the same tree structure; primals have "
                        f"tree structure {p_tree} whereas tangents have tree structure {t_tree}.")
    _number_leaves(tree_flatten(tuple(tangents))[0], "the tangents")


def _tangent_pass(fun, primals, has_aux, who, kwargs=None, argnums=None):
    """Trace f on the primals (those at argnums, by default all) and return (out leaves, out tree, aux,
    traced, a function seeds -> tangents)."""
    nums = range(len(primals)) if argnums is None else argnums
    out, traced, nested = trace(fun, primals, kwargs or {}, nums, who)
    out, aux = _split_aux(out, has_aux)
    outs, out_tree = tree_flatten(out)
    _number_leaves(outs, "the outputs of f")
    leaves = [v for _, fresh in traced for v in fresh]
    order = graph_order(outs, leaves)
    _forward_mode_allowed(order)
    return outs, out_tree, aux, traced, lambda seeds: push_tangents(order, seeds, nested or _staged(outs))


def _forward_mode_allowed(order):
    if any(node.op == "custom_vjp_call" for node in order):
        raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function.")


@pauses_cycle_collection
def jvp(fun, primals, tangents, has_aux=False):
    """(f(*primals), the derivative of f at primals along tangents): forward mode, as `jax.jvp`."""
    _check_jvp_args(primals, tangents)
    outs, out_tree, aux, traced, push = _tangent_pass(fun, primals, has_aux, "jvp")
    seeds = {v: _tangent(t) for (_, fresh), tan in zip(traced, tangents) for v, t in zip(fresh, tree_flatten(tan)[0])}
    found = push(seeds)
    result = (out_tree.unflatten([_primal(o) for o in outs]),
              out_tree.unflatten([_zero_if_none(found.get(o) if isinstance(o, Value) else None) for o in outs]))
    return (*result, aux) if has_aux else result


def _tangent(t):
    return t if isinstance(t, Value) else float(t)


@pauses_cycle_collection
def linearize(fun, *primals):
    """(f(*primals), f_jvp): f_jvp(*tangents) is the derivative along them, from f traced once, as
    `jax.linearize`."""
    outs, out_tree, _, traced, push = _tangent_pass(fun, primals, False, "linearize")

    def f_jvp(*tangents):
        _check_jvp_args(primals, tangents)
        found = push({v: _tangent(t) for (_, fresh), tan in zip(traced, tangents)
                      for v, t in zip(fresh, tree_flatten(tan)[0])})
        return out_tree.unflatten([_zero_if_none(found.get(o) if isinstance(o, Value) else None) for o in outs])

    return out_tree.unflatten([_primal(o) for o in outs]), f_jvp


def jacfwd(fun, argnums=0, has_aux=False):
    """The Jacobian by forward mode, one tangent pass per input leaf; the same structure as `jacrev`."""

    @functools.wraps(fun)
    @pauses_cycle_collection
    def jacobian(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        outs, out_tree, aux, traced, push = _tangent_pass(fun, args, has_aux, "jacfwd", kwargs, nums)
        columns = {v: push({v: 1.0}) for _, fresh in traced for v in fresh}
        jac = out_tree.unflatten([_per_argument(traced, {v: col.get(o) for v, col in columns.items()}, argnums)
                                  for o in outs])
        return (jac, aux) if has_aux else jac

    return jacobian


def hessian(fun, argnums=0, has_aux=False):
    """The matrix of second derivatives, jacfwd(jacrev(f)) as in JAX: for a list input, a list of lists."""
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux)
