"""Shared test set-up: float64 for the cross-checks, the names data, tiny data files, tree_allclose."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]


def names_path():
    path = os.environ.get("MICROJAX_DATA") or ROOT.parent / "shared" / "data" / "names.txt"
    return Path(path)


@pytest.fixture
def names():
    path = names_path()
    if not path.exists():
        pytest.skip("names.txt not found: set MICROJAX_DATA")
    return path


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
