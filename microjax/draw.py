"""Pictures of an expression graph, labelled with each node's op, value and gradient: Graphviz DOT text,
rendered by Graphviz's `dot` where it is installed, else by a layered layout drawn with matplotlib."""

import re
import shutil
import subprocess
from pathlib import Path

from .core import PRIMITIVES, Value
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
        root, traced, _ = trace(f_or_node, args, {}, tuple(range(len(args))), "draw_dot")
        if not isinstance(root, Value):
            raise TypeError(f"draw_dot needs f to return a Value, got {type(root).__name__}")
        for i, (treedef, values) in enumerate(traced):
            _name_leaves(treedef.unflatten(values), f"arg{i}", names)
    grads = backward({root: 1.0})
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
            elif isinstance(arg, (int, float)):  # a constant operand gets its own box, as micrograd draws it
                local = _local_derivative(node, k)
                box(f"{ids[node]}c{k}", "const", arg, local * grads.get(node, 0.0))
                lines.append(f"  {ids[node]}c{k} -> {ids[node]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _local_derivative(node, k):
    """d(node)/d(its k-th operand) as a float, from its primitive's rule (the operand need not be a Value)."""
    prim, datas = PRIMITIVES[node.op], tuple(a.data if isinstance(a, Value) else a for a in node.args)
    if prim.rules is not None:
        return prim.rules[k](1.0, *datas, node.data)
    return prim.constant[k] if prim.constant is not None else prim.local(datas, node.data)[k]


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


def render(dot_text, path, fmt=None, engine=None):
    """Write the picture of `dot_text` to `path`; the format from its suffix (svg, png, pdf) or `fmt`.

    engine "dot" runs Graphviz's program; "matplotlib" draws draw_dot's graphs in pure Python (a layered
    layout, matplotlib imported only here); None picks dot where it is installed, else matplotlib.
    """
    fmt = fmt or (str(path).rsplit(".", 1)[-1] if "." in Path(path).name else None)
    if not fmt:
        raise ValueError(f"cannot tell the picture format of {path}: give it a suffix (.svg, .png, .pdf)")
    engine = engine or ("dot" if shutil.which("dot") else "matplotlib")
    if engine == "dot":
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError("Graphviz's `dot` program is not installed (e.g. `apt-get install graphviz`); "
                               "render(..., engine='matplotlib') draws without it")
        done = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_text.encode(), capture_output=True)
        if done.returncode:
            raise RuntimeError(f"dot could not write {path}: {done.stderr.decode().strip()}")
    elif engine == "matplotlib":
        _render_matplotlib(dot_text, path, fmt)
    else:
        raise ValueError(f"unknown engine {engine!r}: 'dot', 'matplotlib' or None")
    return path


_NODE = re.compile(r'^\s*(\w+)\s*\[label="((?:[^"\\]|\\.)*)"\];?\s*$')
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*;?\s*$")
COLUMN, ROW, DPI = 1.7, 0.62, 100  # inches per layer and per node in the tallest layer; pixels per inch


def parse_dot(dot_text):
    """({node: [label lines]}, [(parent, child)]) from DOT as draw_dot writes it (record labels, edges)."""
    nodes, edges = {}, []
    for line in dot_text.splitlines():
        if m := _NODE.match(line):
            fields = re.split(r"(?<!\\)\|", m.group(2).strip().removeprefix("{").removesuffix("}"))
            nodes[m.group(1)] = [re.sub(r"\\(.)", r"\1", f.strip()) for f in fields]
        elif m := _EDGE.match(line):
            edges.append(m.groups())
    if not nodes:
        raise ValueError("no labelled nodes found: the matplotlib route reads DOT as draw_dot writes it")
    for a, b in edges:
        nodes.setdefault(a, [a]), nodes.setdefault(b, [b])
    return nodes, edges


def layered_layout(nodes, edges):
    """{node: (x, y)}: x is the layer, y the place in it, as in Sugiyama's method (Graphviz's own).

    Layers count back from the output (the longest path to it), so each input sits just before its
    first use rather than all in the first column; a few barycentre sweeps order each layer by its
    neighbours' places, which keeps most edges from crossing. No recursion, deterministic.
    """
    parents, children = {n: [] for n in nodes}, {n: [] for n in nodes}
    for a, b in edges:
        parents[b].append(a), children[a].append(b)
    pending = {n: len(children[n]) for n in nodes}  # Kahn's algorithm from the sinks back
    ready = [n for n in nodes if not pending[n]]
    depth = dict.fromkeys(ready, 0)
    while ready:
        n = ready.pop()
        for p in parents[n]:
            depth[p] = max(depth.get(p, 0), depth[n] + 1)
            pending[p] -= 1
            if not pending[p]:
                ready.append(p)
    if len(depth) < len(nodes):
        raise ValueError("the graph has a cycle")
    top = max(depth.values())
    layers = [[] for _ in range(top + 1)]
    for n in nodes:
        layers[top - depth[n]].append(n)
    y = {}

    def place(layer):
        for i, n in enumerate(layer):
            y[n] = i - (len(layer) - 1) / 2

    for layer in layers:
        place(layer)
    for sweep in range(6):  # forward sweeps order by parents, backward ones by children
        order, nbrs = (layers[1:], parents) if sweep % 2 == 0 else (layers[-2::-1], children)
        for layer in order:
            layer.sort(key=lambda n: sum(y[m] for m in nbrs[n]) / len(nbrs[n]) if nbrs[n] else y[n])
            place(layer)
    return {n: (top - depth[n], y[n]) for n in nodes}


def _render_matplotlib(dot_text, path, fmt):
    try:
        import matplotlib
        from matplotlib.figure import Figure  # no pyplot: nothing global changes in the caller's session
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    except ImportError:
        raise RuntimeError("drawing needs Graphviz's `dot` program or matplotlib (pip install matplotlib)") from None
    nodes, edges = parse_dot(dot_text)
    xy = layered_layout(nodes, edges)
    n_layers = max(x for x, _ in xy.values()) + 1
    tallest = max(sum(1 for x2, _ in xy.values() if x2 == x) for x in range(n_layers))
    fig = Figure(figsize=(COLUMN * n_layers, ROW * tallest + 0.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.5, n_layers - 0.5)
    ax.set_ylim(tallest / 2 + 0.1, -tallest / 2 - 0.1)
    ax.axis("off")
    w, h = 0.42, 0.4  # half a box, in layers and rows
    for a, b in edges:
        (xa, ya), (xb, yb) = xy[a], xy[b]
        ax.add_patch(FancyArrowPatch((xa + w, ya), (xb - w, yb), arrowstyle="-|>", mutation_scale=7, lw=0.6,
                                     color="0.45", shrinkA=0, shrinkB=0))
    for n, lines in nodes.items():
        x, y = xy[n]
        ax.add_patch(FancyBboxPatch((x - w, y - h), 2 * w, 2 * h, boxstyle="round,pad=0,rounding_size=0.05",
                                    fc="#eef3fb", ec="0.3", lw=0.6))
        ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=6.5, family="monospace")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable and small
        fig.savefig(path, format=fmt, dpi=DPI)
