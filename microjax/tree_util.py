"""Pytrees as `jax.tree_util` has them: nested containers taken apart into a flat list of leaves and a
tree definition that puts them back.

The containers are tuples, lists, dicts (their keys sorted, so two dicts with the same keys always pair
up leaf by leaf), `None` (a subtree with no leaves), namedtuples, `OrderedDict` and `defaultdict` (kept
as their own types), and any class registered with `register_pytree_node`. Anything else is a leaf.
Every transform in microjax pairs trees through here, so two trees of different structures are a clear
error, never a silent pairing.
"""

import collections
import itertools

__all__ = ["PyTreeDef", "register_pytree_node", "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves",
           "tree_structure", "all_leaves"]


def _sorted_keys(d):
    try:
        return tuple(sorted(d))
    except TypeError as e:  # JAX: keys of a dict must be comparable with each other
        raise TypeError(f"pytree dict keys must be sortable, got {list(d)!r}: {e}") from None


# type -> (flatten: node -> (children, aux), unflatten: (aux, children) -> node)
_registry = {
    tuple: (lambda t: (t, None), lambda _, c: tuple(c)),
    list: (lambda l: (l, None), lambda _, c: list(c)),
    dict: (lambda d: (tuple(d[k] for k in _sorted_keys(d)), _sorted_keys(d)), lambda keys, c: dict(zip(keys, c))),
    type(None): (lambda _: ((), None), lambda _, c: None),
    collections.OrderedDict: (lambda d: (tuple(d.values()), tuple(d)),
                              lambda keys, c: collections.OrderedDict(zip(keys, c))),
    collections.defaultdict: (lambda d: (tuple(d[k] for k in _sorted_keys(d)), (d.default_factory, _sorted_keys(d))),
                              lambda aux, c: collections.defaultdict(aux[0], zip(aux[1], c))),
}


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Make instances of `nodetype` tree nodes: `flatten_func(x) -> (children, aux_data)` and
    `unflatten_func(aux_data, children) -> x`, as in `jax.tree_util.register_pytree_node`."""
    if nodetype in _registry:
        raise ValueError(f"Duplicate custom PyTreeDef type registration for {nodetype}.")
    _registry[nodetype] = (flatten_func, unflatten_func)
    _rules.pop(nodetype, None)


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


_rules = {}  # type -> its rule, or None for a leaf type: looked up once per type


def _node_rule(x):
    t = type(x)
    try:
        return _rules[t]
    except KeyError:
        rule = _registry.get(t)
        if rule is None and _is_namedtuple(x):
            rule = (lambda n: (tuple(n), None)), (lambda _, c, cls=t: cls(*c))
        _rules[t] = rule
        return rule


class PyTreeDef:
    """The structure of a pytree without its leaves: `*` for a leaf, else the node's type, its aux data
    (dict keys, a namedtuple's class) and its children's definitions. Compared by value."""

    __slots__ = ("kind", "aux", "children", "num_leaves", "_rebuild", "_flat", "_hash")

    def __init__(self, kind, aux, children, rebuild=None):
        self.kind, self.aux, self.children, self._rebuild = kind, aux, tuple(children), rebuild
        self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in self.children)
        self._flat = kind is not None and all(c.kind is None for c in self.children)  # children all leaves
        self._hash = None

    def _key(self):
        return self.kind, self.aux, self.children

    def __eq__(self, other):
        return self is other or isinstance(other, PyTreeDef) and self._key() == other._key()

    def __hash__(self):
        if self._hash is None:
            self._hash = hash((self.kind, _hashable(self.aux), self.children))
        return self._hash

    @property
    def num_nodes(self):
        return 1 + sum(c.num_nodes for c in self.children)

    def unflatten(self, leaves):
        """The tree of this structure with these leaves, in order."""
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            few = "few" if len(leaves) < self.num_leaves else "many"
            raise ValueError(f"Too {few} leaves for PyTreeDef; expected {self.num_leaves}, got {len(leaves)}.")
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.kind is None:
            return next(it)
        if self._flat:
            return self._rebuild(self.aux, list(itertools.islice(it, len(self.children))))
        return self._rebuild(self.aux, [next(it) if c.kind is None else c._build(it) for c in self.children])

    def flatten_up_to(self, tree):
        """The subtrees of `tree` that sit where this structure has leaves; a clear ValueError where the
        structures differ."""
        out = []
        self._up_to(tree, out, "tree")
        return out

    def _up_to(self, tree, out, path):
        if self.kind is None:
            out.append(tree)
            return
        rule = _node_rule(tree)
        if type(tree) is not self.kind or rule is None:
            raise ValueError(f"pytree structure error: at {path} expected a {_kind_name(self.kind)}, got "
                             f"{type(tree).__name__} {_short(tree)}; the structures must match ({self})")
        children, aux = rule[0](tree)
        if aux != self.aux or len(children) != len(self.children):
            raise ValueError(f"pytree structure error: at {path} the {_kind_name(self.kind)} has "
                             f"{_describe(aux, children)} where {_describe(self.aux, self.children)} was expected")
        for i, (c, spec) in enumerate(zip(children, self.children)):
            spec._up_to(c, out, f"{path}[{aux[i]!r}]" if isinstance(aux, tuple) and len(aux) == len(children)
                        else f"{path}[{i}]")

    def __repr__(self):
        return f"PyTreeDef({self._str()})"

    def _str(self):
        kind, parts = self.kind, [c._str() for c in self.children]
        if kind is None:
            return "*"
        if kind is type(None):
            return "None"
        if kind is tuple:
            return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"
        if kind is list:
            return f"[{', '.join(parts)}]"
        if kind is dict:
            return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(self.aux, parts)) + "}"
        if kind is collections.OrderedDict:
            return f"CustomNode(OrderedDict[{self.aux!r}], [{', '.join(parts)}])"
        if _is_namedtuple_type(kind):
            return f"CustomNode(namedtuple[{kind.__name__}], [{', '.join(parts)}])"
        return f"CustomNode({kind.__name__}[{self.aux!r}], [{', '.join(parts)}])"


def _is_namedtuple_type(kind):
    return isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")


def _kind_name(kind):
    return "None" if kind is type(None) else kind.__name__


def _describe(aux, children):
    return f"keys {list(aux)!r}" if isinstance(aux, tuple) else f"{len(children)} children"


def _short(x):
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _hashable(aux):
    try:
        hash(aux)
        return aux
    except TypeError:
        return repr(aux)


_LEAF = PyTreeDef(None, None, ())


def tree_flatten(tree, is_leaf=None):
    """(leaves, treedef): the leaves left to right (dict values in sorted key order) and the structure."""
    leaves = []
    return leaves, _flatten(tree, leaves, is_leaf)


_LEAF_LISTS = {}  # n -> the structure of a list of n leaves, shared: the common case, built once


def _flatten(tree, leaves, is_leaf):
    rule = None if is_leaf is not None and is_leaf(tree) else _node_rule(tree)
    if rule is None:
        leaves.append(tree)
        return _LEAF
    if type(tree) is list and is_leaf is None and all(_rules.get(t, 0) is None for t in set(map(type, tree))):
        leaves.extend(tree)
        n = len(tree)
        if n not in _LEAF_LISTS:
            _LEAF_LISTS[n] = PyTreeDef(list, None, [_LEAF] * n, rule[1])
        return _LEAF_LISTS[n]
    children, aux = rule[0](tree)
    specs = []
    for c in children:
        if is_leaf is None and _rules.get(type(c), 0) is None:  # a leaf of a type seen before: the common case
            leaves.append(c)
            specs.append(_LEAF)
        else:
            specs.append(_flatten(c, leaves, is_leaf))
    return PyTreeDef(type(tree), aux, specs, rule[1])


def tree_unflatten(treedef, leaves):
    """The tree of structure `treedef` whose leaves are `leaves`, in order."""
    return treedef.unflatten(leaves)


def tree_leaves(tree, is_leaf=None):
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None):
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f, tree, *rest, is_leaf=None):
    """A tree shaped like `tree` whose leaves are `f(leaf, *the leaves of rest at the same place)`; each of
    `rest` has the same structure as `tree` (or `tree` as a prefix of it)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [treedef.flatten_up_to(r) for r in rest]
    return treedef.unflatten(f(*xs) for xs in zip(leaves, *others))


def all_leaves(iterable):
    """Whether every item of `iterable` is a leaf (not a tree node)."""
    return all(_node_rule(x) is None for x in iterable)
