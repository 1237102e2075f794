"""The passes over a graph: creation order, reverse mode (cotangents) and forward mode (tangents).

First order at top level, a pass computes with the floats each node recorded (its local derivatives):
the fast path. When its result must itself be differentiated or staged (a transform inside another,
or under jit and make_jaxpr), it calls each primitive's derivative rule on the nodes themselves, so what
it computes is recorded as new nodes; the reverse pass then linearizes the graph and transposes it
(`linear.py`), as JAX's does. Nothing is written back to a node: tangents and cotangents live in dicts
that die with the pass, so nothing piles up and nothing needs zeroing. No pass recurses.
"""

import bisect
import itertools
import math
import operator

from .core import PRIMITIVES, Tracer, Value, literal, state
from .lax import add_any
from .linear import Lin, transpose

__all__ = ["topological_order", "oldest", "depends_on", "backward", "push_tangents", "linearize_graph",
           "reverse_nested"]


def topological_order(roots, since=0):
    """Every node that `roots` (a Value or a list of them) depend on, in creation order, which is
    topological (a node's parents exist before it) and is the order JAX's tracer records equations in.
    No recursion. A nested pass gives `since`, its inputs' serial: older nodes cannot depend on them."""
    stack = [r for r in ([roots] if isinstance(roots, Value) else roots) if r.serial >= since]
    seen = set(stack)
    while stack:
        for parent in stack.pop().parents:
            if parent not in seen and parent.serial >= since:
                seen.add(parent)
                stack.append(parent)
    return sorted(seen, key=_by_serial)


_by_serial = operator.attrgetter("serial")


def oldest(leaves):
    """The serial of the oldest of a transform's inputs: no node made before it depends on them."""
    return min((leaf.serial for leaf in leaves), default=math.inf)


def depends_on(order, leaves):
    """The nodes of `order` (topologically sorted) that are `leaves` or depend on one of them."""
    live = set(leaves)
    for node in order:
        if node not in live:
            for parent in node.parents:
                if parent in live:
                    live.add(node)
                    break
    return live


def backward(seeds):
    """First order: d(outputs)/d(node) for every node the outputs depend on, from the recorded local
    derivatives; `seeds` maps each output to its cotangent. Floats in, floats out (the fast path); a
    cotangent that is a Value or a Tracer gives Values or Tracers (the pass is linear in it)."""
    grads = dict(seeds)
    order = reversed(topological_order(list(seeds)))
    if all(type(g) is float for g in grads.values()):
        get = grads.get
        for node in order:
            g = grads[node]
            for parent, local in zip(node.parents, node.local_grads):
                grads[parent] = get(parent, 0.0) + local * g
        return grads
    for node in order:
        g = grads.get(node)
        if g is None:
            continue
        for parent, local in zip(node.parents, node.local_grads):
            if local != 0.0:
                c = g if local == 1.0 else local * g
                grads[parent] = add_any(grads[parent], c) if parent in grads else c
    return grads


_passes = itertools.count(1)


def tangent_of(node, tangents, pass_id=0):
    """The tangent of `node` from its operands' tangents (None where zero), by its primitive's rule. Under
    staging its constant operands become literals, so that what the rule does with them is staged too
    (as JAX stages it), and its equations are anchored to the node and the pass for the printer."""
    if type(node) is not Tracer:  # concrete: nothing is printed, so no literals and no anchors
        return PRIMITIVES[node.op].jvp(tangents, *node.args, node)
    args = tuple(literal(a) if type(a) is float else a for a in node.args)
    state.anchor = (node, pass_id)
    try:
        return PRIMITIVES[node.op].jvp(tangents, *args, node)
    finally:
        state.anchor = None


def push_tangents(order, tangents, nested):
    """Forward mode over a topologically sorted graph: {node: tangent} for every node that depends on the
    leaves in `tangents` ({leaf: tangent}). From the recorded local derivatives on a first-order pass;
    by the rules (so the tangents are nodes, and their equations JAX's) when nested."""
    tangents = dict(tangents)
    get = tangents.get
    pass_id = next(_passes)
    for node in order:
        if node in tangents:
            continue
        if nested:
            ts = [get(a) if isinstance(a, Value) else None for a in node.args]
            if any(t is not None for t in ts):
                t = tangent_of(node, ts, pass_id)
                if t is not None:
                    tangents[node] = t
            continue
        t = None
        for parent, local in zip(node.parents, node.local_grads):
            tp = get(parent)
            if tp is not None:
                t = local * tp if t is None else t + local * tp
        if t is not None:
            tangents[node] = t
    return tangents


def graph_order(roots, leaves):
    """The nodes between `leaves` and `roots` in creation order. Staged, every recorded equation after the
    leaves is included, used or not: JAX differentiates each op its tracer records."""
    since = oldest(leaves)
    order = topological_order([r for r in roots if isinstance(r, Value)], since=since)
    staged = [x for x in leaves if type(x) is Tracer]
    if staged:
        eqns = staged[0].trace.eqns
        start = bisect.bisect_left(eqns, since, key=_by_serial)
        order = sorted(set(order).union(eqns[start:]), key=_by_serial)
    return order


def linearize_graph(roots, leaves):
    """The tangent of every node between `leaves` and `roots` as a linear variable (`linear.Lin`): the
    linear program the reverse pass transposes. The rules' other work (JAX's residuals) is done here,
    in forward order."""
    order = graph_order(roots, leaves)
    inputs = {leaf: Lin("input", (leaf,)) for leaf in leaves}
    return push_tangents(order, inputs, nested=True), [inputs[leaf] for leaf in leaves]


def reverse_nested(linear, seeds):
    """d(outputs)/d(leaves) by transposing a linearized graph (`linearize_graph`), one per leaf (None where
    zero); `seeds` maps outputs to cotangents."""
    tangents, inputs = linear
    pairs = [(tangents[o], c) for o, c in seeds.items() if isinstance(tangents.get(o), Lin)]
    return transpose(pairs, inputs)
