"""Shared fixtures: float64 for the cross-checks, the names data, a tiny data file. Helpers and golden
values are in tests/helpers.py (ROOT is here too, for the modules that import it from conftest)."""

import jax
import numpy as np
import pytest

from .helpers import ROOT  # noqa: F401

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def names():
    """The names.txt that ships inside the package: every clone has it, so no test skips for want of data."""
    from train.lib.data import embedded_names

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


SLOW_SECONDS = 2.0  # a test that takes longer belongs to the slow tier: pytest -m "not slow" is the inner loop
_unmarked_slow = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _unmarked_slow:
        terminalreporter.section(f"over {SLOW_SECONDS:g} s but not marked slow")
        for seconds, nodeid in sorted(_unmarked_slow, reverse=True):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
