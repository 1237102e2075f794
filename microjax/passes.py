"""The passes over a graph: creation order, reverse mode (cotangents) and forward mode (tangents).

At top level a pass computes with floats from each node's recorded local derivatives. Inside another
transform (nested) it calls each primitive's derivative rule on the nodes themselves, so what it
computes is recorded as Values that the outer transform differentiates in turn. Nothing is written back
to a node: cotangents and tangents live in dicts that die with the pass (as in JAX's Autodidax), so
nothing piles up and nothing needs zeroing. No pass recurses, so graphs of any depth are fine.
"""

import math
import operator

from .engine import PRIMITIVES, Value, add_any, derivatives

__all__ = ["topological_order", "oldest", "depends_on", "local_derivatives", "backward", "backward_nested",
           "push_tangents"]


def topological_order(roots, since=0):
    """Every node that `roots` (a Value or a list of them) depend on, in creation order, which is
    topological (a node's parents exist before it) and is the order JAX's tracer records equations in.
    No recursion. A nested pass gives `since`, its inputs' serial: older nodes cannot depend on them."""
    stack = [r for r in ([roots] if type(roots) is Value else roots) if r.serial >= since]
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


def backward(root):
    """First order: d(root)/d(node) as a float for every node in root's graph, as a fresh dict."""
    grads = {root: 1.0}
    get = grads.get
    for node in reversed(topological_order(root)):
        g = grads[node]
        for parent, local in zip(node.parents, node.local_grads):
            grads[parent] = get(parent, 0.0) + local * g
    return grads


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


def local_derivatives(node):
    """(operands, d(node)/d(operand) for each): the node's rule called on the operands themselves, so
    the derivatives are Values that can be differentiated again. A node built by hand keeps its floats."""
    if node.op not in PRIMITIVES:
        return node.parents, node.local_grads
    return node.args, derivatives(node.op, *node.args, node)


def _scale(d, g):
    """d * g, where a derivative or cotangent of exactly 1 or -1 costs no node (as in JAX's transposes)."""
    if type(d) is float:
        if d == 1.0:
            return g
        if d == -1.0:
            return -g
    if type(g) is float and g == 1.0:
        return d
    return d * g


def backward_nested(root, leaves):
    """d(root)/d(node) for the nodes that depend on `leaves`, as Values recorded in the graph (so that an
    enclosing transform can differentiate them). Cotangents stop at `leaves`: a nested transform's inputs
    stand for outer Values, and the derivative is with respect to the inputs, not through them."""
    order = topological_order(root, since=oldest(leaves))
    live = depends_on(order, leaves)
    grads = {root: 1.0}
    for node in reversed(order):
        g = grads.get(node)
        if g is None or node not in live or not node.parents:
            continue
        for arg, d in zip(*local_derivatives(node)):
            if arg in live and not (type(d) is float and d == 0.0):
                c = _scale(d, g)
                grads[arg] = add_any(grads[arg], c) if arg in grads else c
    return grads


def push_tangents(order, tangents, nested):
    """Forward mode over a topologically sorted graph: {node: tangent} for every node that depends on the
    leaves in `tangents` ({leaf: tangent}). Floats from the recorded local derivatives on a first-order
    pass; Values from the rules when nested."""
    tangents = dict(tangents)
    get = tangents.get
    for node in order:
        if node in tangents:
            continue
        t = None
        if nested:
            if any(p in tangents for p in node.parents):
                for arg, d in zip(*local_derivatives(node)):
                    if arg in tangents and not (type(d) is float and d == 0.0):
                        c = _scale(d, tangents[arg])
                        t = c if t is None else add_any(t, c)
        else:
            for parent, local in zip(node.parents, node.local_grads):
                tp = get(parent)
                if tp is not None:
                    t = local * tp if t is None else t + local * tp
        if t is not None:
            tangents[node] = t
    return tangents
