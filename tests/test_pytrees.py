"""microjax.tree_util against jax.tree_util: the same leaves in the same order, the same structures
(printed the same), the same errors; and every pairing of two trees in microjax going through it."""

import collections

import jax
import numpy as np
import pytest

import microjax as mj
from microjax import tree_util as tu

Point = collections.namedtuple("Point", "x y")
TREES = [
    {"b": 1.0, "a": [2.0, (3.0, None)], "c": {"z": 4.0, "y": 5.0}},
    [1.0, (), [], {}, None, (2.0,)],
    Point(1.0, [2.0, 3.0]),
    collections.OrderedDict([("z", 1.0), ("a", 2.0)]),
    collections.defaultdict(list, {"k": 1.0, "a": [2.0]}),
    (None, {"x": None}),
    3.0,
]


@pytest.mark.parametrize("tree", TREES, ids=lambda t: type(t).__name__)
def test_leaves_and_structure_as_jax(tree):
    leaves, treedef = tu.tree_flatten(tree)
    jleaves, jtreedef = jax.tree_util.tree_flatten(tree)
    assert leaves == jleaves
    assert str(treedef) == str(jtreedef)
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert rebuilt == tree and type(rebuilt) is type(tree)
    assert tu.tree_structure(tree) == treedef and hash(tu.tree_structure(tree)) == hash(treedef)
    assert tu.tree_leaves(tree) == jax.tree_util.tree_leaves(tree)
    doubled = tu.tree_map(lambda x: 2 * x, tree)
    assert doubled == jax.tree_util.tree_map(lambda x: 2 * x, tree)


def test_tree_map_pairs_by_key_and_refuses_another_structure_as_jax():
    a, b = {"w": 1.0, "b": 2.0}, {"b": 10.0, "w": 20.0}  # the same keys, inserted in another order
    assert tu.tree_map(lambda x, y: x + y, a, b) == jax.tree_util.tree_map(lambda x, y: x + y, a, b) == {"b": 12.0, "w": 21.0}
    for other in ({"w": 1.0, "c": 2.0}, [1.0, 2.0], {"w": 1.0}):
        for tree_map in (tu.tree_map, jax.tree_util.tree_map):
            with pytest.raises(ValueError):
                tree_map(lambda x, y: x + y, a, other)
    with pytest.raises(ValueError, match="Too few leaves"):
        tu.tree_unflatten(tu.tree_structure([1.0, 2.0]), [1.0])


def test_a_registered_class_is_a_node_as_in_jax():
    class Pair:
        def __init__(self, left, right):
            self.left, self.right = left, right

        def __eq__(self, other):
            return type(other) is Pair and (self.left, self.right) == (other.left, other.right)

    flatten, unflatten = (lambda p: ((p.left, p.right), "pair")), (lambda aux, c: Pair(*c))
    tu.register_pytree_node(Pair, flatten, unflatten)
    jax.tree_util.register_pytree_node(Pair, flatten, unflatten)
    tree = {"p": Pair(1.0, [2.0, 3.0])}
    assert tu.tree_leaves(tree) == jax.tree_util.tree_leaves(tree) == [1.0, 2.0, 3.0]
    assert tu.tree_map(lambda x: x + 1, tree) == {"p": Pair(2.0, [3.0, 4.0])}
    g = mj.grad(lambda t: t["p"].left * t["p"].right[1])(tree)
    assert type(g["p"]) is Pair and g["p"] == Pair(3.0, [0.0, 1.0])
    with pytest.raises(ValueError, match="Duplicate"):
        tu.register_pytree_node(Pair, flatten, unflatten)


def test_sgd_pairs_a_reordered_dict_by_key():
    """Before: {'w': 1.0, 'b': 1.0}, the second dict's values paired in insertion order."""
    params, grads = {"w": 1.0, "b": 2.0}, {"b": 0.0, "w": 10.0}
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    assert mj.sgd(params, grads, 0.1) == expected == {"w": 0.0, "b": 2.0}
    with pytest.raises(ValueError, match="structure"):
        mj.sgd(params, {"w": 1.0, "c": 2.0}, 0.1)


def test_transforms_keep_namedtuples_ordered_dicts_and_none_as_jax():
    args = (Point(2.0, 3.0), collections.OrderedDict(z=2.0, a=3.0), {"x": 1.5, "unused": None})

    def f(p, od, d):
        return p.x * p.y + od["z"] * od["a"] + d["x"] ** 2

    for argnums in (0, 1, 2, (0, 2)):
        got, want = mj.grad(f, argnums)(*args), jax.grad(f, argnums)(*args)
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
        np.testing.assert_allclose(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), rtol=1e-12)
    assert type(mj.grad(f)(*args)) is Point and list(mj.grad(f, 1)(*args)) == ["z", "a"]
    out, tangent = mj.jvp(lambda p: Point(p.y, p.x * 2.0), (Point(1.0, 2.0),), (Point(1.0, 0.0),))
    assert out == Point(2.0, 2.0) and tangent == Point(0.0, 2.0)
