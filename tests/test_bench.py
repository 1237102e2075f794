"""The benchmark's table says what it means: one ratio (our time over theirs) for every row, anchors that
say where and when they were measured, and baselines that are not installed named with their install."""

import types

import pytest

from bench import __main__ as bench_main, cases
from bench.timing import row


def test_every_ratio_is_our_time_over_theirs():
    assert row("x", "k", 2.0, "µs/step", "plain", 8.0)["time_ratio"] == 0.25  # a time: ours / theirs
    assert row("x", "k", 400.0, "names/s", "plain", 100.0, faster_is="higher")["time_ratio"] == 0.25  # a rate
    anchored = bench_main.with_anchors([row("step", "preset_long_us_per_step", 20.5, "µs/step")])
    assert [r["time_ratio"] for r in anchored[1:]] == pytest.approx([20.5 / 13.7, 20.5 / 26.0, 20.5 / 270.0])


def test_anchors_say_where_and_when_they_were_measured(capsys):
    rows = bench_main.with_anchors([row("step", "batched_default_us_per_doc", 6.3, "µs/doc")])
    assert rows[1]["baseline"] == ("measured on this project's 2-core CPU machine class (AMD EPYC, KVM), "
                                   "2026-11-24, not in this run")
    bench_main.print_table(rows)
    out = capsys.readouterr().out
    assert "ours / theirs (time)" in out and "2026-11-24" in out and "speed-up" not in out


def test_a_baseline_that_is_not_installed_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(cases, "have", lambda module: False)
    args = types.SimpleNamespace(reps=1)
    rows = cases.torch_eager(args) + cases.micrograd(args)
    assert [r["value"] for r in rows] == [None, None]
    assert all("is not installed; pip install -e '.[bench]' adds it" in r["case"] for r in rows)
    bench_main.print_table(bench_main.with_anchors(rows))
    assert "nan" not in capsys.readouterr().out
