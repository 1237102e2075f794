"""Shared test set-up: float64 for the cross-checks, the names data, tiny data files, tree_allclose."""

from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def names():
    """The names.txt that ships inside the package: every clone has it, so no test skips for want of data."""
    from train.data import embedded_names

    return embedded_names()


@pytest.fixture
def tiny_data(tmp_path):
    """A small data file: 64 short names, enough for batches and a held-out split."""
    rng = np.random.default_rng(0)
    letters = "abcdefghij"
    lines = ["".join(rng.choice(list(letters), size=rng.integers(2, 7))) for _ in range(64)]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def tree_allclose(a, b, rtol, atol=0.0):
    """Same structure, and every leaf equal within rtol/atol (relative to the larger leaf)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"structures differ: {ta} vs {tb}"
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)
