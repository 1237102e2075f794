"""Graphviz pictures of an expression graph, labelled with each node's op, value and gradient."""

import shutil
import subprocess

from .engine import Value, _data, derivatives
from .passes import backward, topological_order
from .transforms import trace

__all__ = ["draw_dot", "render"]


def draw_dot(f_or_node, *args):
    """DOT text of the graph of `f(*args)` (every argument traced) or of an already built node.

    Gradients are d(output)/d(node). Inputs traced from `f`'s arguments are named by where they sit,
    e.g. `x[0]` or `p['w'][1]`.
    """
    names = {}
    if isinstance(f_or_node, Value):
        root = f_or_node
    else:
        root, traced = trace(f_or_node, args, tuple(range(len(args))))
        if not isinstance(root, Value):
            raise TypeError(f"draw_dot needs f to return a Value, got {type(root).__name__}")
        for i, (unflatten, values) in enumerate(traced):
            _name_leaves(unflatten(values), f"arg{i}", names)
    grads = backward(root)
    order = topological_order(root)
    ids = {node: f"n{i}" for i, node in enumerate(order)}
    lines = ["digraph G {", "  rankdir=LR;", "  node [shape=record];"]

    def box(name, title, data, grad):
        lines.append(f'  {name} [label="{{ {_escape(title)} | data {data:.4f} | grad {grad:.4f} }}"];')

    for node in order:
        title = names.get(node, node.op or ("const" if node is not root else "out"))
        box(ids[node], title, node.data, grads.get(node, 0.0))
        for k, arg in enumerate(node.args):
            if isinstance(arg, Value):
                lines.append(f"  {ids[arg]} -> {ids[node]};")
            else:  # a constant operand gets its own box, as micrograd draws it
                local = derivatives(node.op, *(_data(a) for a in node.args), node.data)[k]
                box(f"{ids[node]}c{k}", "const", arg, local * grads.get(node, 0.0))
                lines.append(f"  {ids[node]}c{k} -> {ids[node]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _name_leaves(tree, prefix, names):
    if isinstance(tree, Value):
        names[tree] = prefix
    elif isinstance(tree, dict):
        for k, v in tree.items():
            _name_leaves(v, f"{prefix}[{k!r}]", names)
    else:
        for i, v in enumerate(tree):
            _name_leaves(v, f"{prefix}[{i}]", names)


def _escape(text):
    return "".join("\\" + c if c in '{}|<>"\\' else c for c in text)


def render(dot_text, path, fmt=None):
    """Write the picture to `path` (format from its suffix: svg, png, pdf) with Graphviz's `dot`."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("Graphviz's `dot` program is not installed (e.g. `apt-get install graphviz`); "
                           "the DOT text itself can be pasted into any Graphviz viewer")
    fmt = fmt or str(path).rsplit(".", 1)[-1]
    subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_text.encode(), check=True)
    return path
