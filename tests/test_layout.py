"""The layout holds what the README's Layout table says: in train/, the commands are the files beside
cli.py and the library is train/lib/, which never imports a command or the CLI module; no module of the
project takes part in an import cycle; and an import sits inside a function only to put off jax."""

import ast

import pytest

from .helpers import ROOT

PACKAGES = ("microjax", "models", "train", "bench", "notebooks")
# what takes a noticeable part of a second to import: jax and the numerical stack around it
HEAVY = {"jax", "jaxlib", "numpy", "optax", "matplotlib", "safetensors", "nbformat", "nbclient", "torch", "micrograd"}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(name):
    """[(imported module, deferred: inside a function)] of one of our modules, relative imports resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, deferred):
        for child in ast.iter_child_nodes(node):
            inside = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] +
                                    ([base] if base else []))
                for alias in child.names:  # `from . import x` may name a module
                    found.append((f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def ours(target):
    return target if target in MODULES else None


GRAPH = {name: {(ours(t), d) for t, d in imports(name) if ours(t)} for name in MODULES}
COMMANDS = sorted(n for n in MODULES if n.count(".") == 1 and n.startswith("train.") and n not in ("train.cli",
                                                                                                    "train.lib"))
LIBRARY = sorted(n for n in MODULES if n.startswith("train.lib"))


def test_the_commands_are_the_files_beside_cli_and_each_is_one():
    assert COMMANDS == ["train.attention", "train.check", "train.gpt", "train.mlp", "train.sample"]
    for name in COMMANDS:
        text = MODULES[name].read_text()
        assert "def build_parser" in text and "def main" in text and '__name__ == "__main__"' in text, name
    for name in LIBRARY:
        text = MODULES[name].read_text()
        assert "def build_parser" not in text and "__main__" not in text and "argparse" not in text, name


def test_the_library_never_imports_a_command_or_the_cli_module():
    offending = [(name, target) for name in LIBRARY for target, _ in GRAPH[name]
                 if target in COMMANDS or target == "train.cli"]
    assert offending == []


def test_no_module_takes_part_in_an_import_cycle():
    """Every import, deferred ones included, read as an edge: no path leads from a module back to it."""
    edges = {name: sorted({t for t, _ in targets}) for name, targets in GRAPH.items()}
    index, low, stack, cycles = {}, {}, [], []

    def strongly_connected(node):  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                strongly_connected(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1 or node in edges[node]:
                cycles.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            strongly_connected(name)
    assert cycles == []


def imports_jax_at_the_top(name, seen=None):
    seen = seen if seen is not None else set()
    if name in seen:
        return False
    seen.add(name)
    for target, deferred in imports(name):
        if deferred:
            continue
        if target.split(".")[0] in HEAVY or (ours(target) and imports_jax_at_the_top(target, seen)):
            return True
    return False


@pytest.mark.parametrize("name", COMMANDS + LIBRARY + ["train.cli"])
def test_an_import_inside_a_function_only_puts_off_jax(name):
    """Commands answer --help and bad flags before jax starts (with numpy, most of a second), so they,
    and the library modules they import first, import it inside the functions that need it. Anything
    else belongs at the top of its module."""
    late = [target for target, deferred in imports(name) if deferred]
    needless = [t for t in late if not (t.split(".")[0] in HEAVY or (ours(t) and imports_jax_at_the_top(t)))]
    assert needless == [], f"{name} imports {needless} inside a function for no reason"
