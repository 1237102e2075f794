"""The benchmark's table says what it means: one ratio (our time over theirs) for every row, anchors that
say where and when they were measured, and baselines that are not installed named with their install."""

import json
import subprocess
import types

import pytest

from bench import __main__ as bench_main, cases
from bench.timing import row


def test_every_ratio_is_our_time_over_theirs():
    assert row("x", "k", 2.0, "µs/step", "plain", 8.0)["time_ratio"] == 0.25  # a time: ours / theirs
    assert row("x", "k", 400.0, "names/s", "plain", 100.0, faster_is="higher")["time_ratio"] == 0.25  # a rate
    anchored = bench_main.with_anchors([row("step", "preset_long_us_per_step", 20.5, "µs/step")])
    assert [r["time_ratio"] for r in anchored[1:]] == pytest.approx([20.5 / 13.7, 20.5 / 9.0, 20.5 / 26.0,
                                                                      20.5 / 270.0])


def test_anchors_say_where_and_when_they_were_measured(capsys):
    rows = bench_main.with_anchors([row("step", "batched_default_us_per_doc", 6.3, "µs/doc")])
    assert rows[1]["baseline"] == ("measured on this project's 2-core CPU machine class (AMD EPYC, KVM), "
                                   "2026-11-24, not in this run")
    assert rows[2]["baseline"] == "measured on a 2-vCPU Intel Xeon (AVX-512, KVM), 2026-12-02 (issue 20), not in this run"
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


def test_the_shakespeare_case_is_long_and_only_runs_by_name():
    parser = bench_main.build_parser()
    assert "shakespeare" in cases.LONG and "shakespeare" not in cases.ALL
    assert parser.parse_args([]).cases == list(cases.ALL)  # minutes long: never in the default run
    assert parser.parse_args(["--cases", "shakespeare"]).cases == ["shakespeare"]


def test_the_shakespeare_case_reads_both_runs(monkeypatch):
    """Both whole runs stubbed: the trainer's metrics file and the baseline's result line become the rows."""
    def fake_run(cmd, **kwargs):
        if "train.gpt" in cmd:
            with open(cmd[cmd.index("--metrics-file") + 1], "w") as f:
                for r in ({"step": 250, "loss": 2.5}, {"step": 500, "tokens_per_second": 7680.0},  # 250 compiled
                          {"step": 750, "tokens_per_second": 3840.0}, {"step": 1000, "tokens_per_second": 7680.0},
                          {"step": 1000, "val_loss": 1.9, "train_loss": 1.8, "val_whole": 1.87}):
                    f.write(json.dumps(r) + "\n")
            return subprocess.CompletedProcess(cmd, 0)
        assert "bench.torch_shakespeare" in cmd
        out = ("step 1000: train loss 1.9000, val loss 1.9500\nresult: steps 1000 wall_s 90.00 ms_per_iter 125.00 "
               "eval_s 9.00 whole_val_s 4.00 val 1.9500 val_whole 1.9400 threads 1\n")
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(cases.subprocess, "run", fake_run)
    monkeypatch.setattr(cases, "have", lambda module: True)
    rows = {r["key"]: r for r in cases.shakespeare(types.SimpleNamespace(reps=1))}
    speed, val = rows["shakespeare_cpu_ms_per_iter"], rows["shakespeare_cpu_val"]
    assert speed["value"] == pytest.approx(100.0)  # 12 x 64 tokens a step at the median 7,680 tokens/s
    assert speed["baseline_value"] == 125.0 and speed["time_ratio"] == pytest.approx(0.8)
    assert (val["value"], val["val_estimate"], val["baseline_value"], val["baseline_val_estimate"]) == \
        (1.87, 1.9, 1.94, 1.95)
    assert val["time_ratio"] is None  # a loss is not a time
    assert bench_main.target_text(val) == "<= 1.88 (met)"
    assert rows["shakespeare_cpu_s"]["baseline_value"] > 0


@pytest.mark.slow  # importing torch: seconds
def test_the_torch_baseline_schedule_is_the_trainers():
    pytest.importorskip("torch")
    from bench.torch_shakespeare import get_lr
    from train.lib import presets
    from train.lib.config import TrainConfig
    from train.lib.optim import learning_rate

    cfg = TrainConfig(**presets.settings("shakespeare-char-cpu"))
    schedule = learning_rate(cfg, cfg.steps)
    its = [0, 1, 50, 99, 100, 101, 777, 1500, 1999]
    assert [get_lr(it, cfg, cfg.steps) for it in its] == pytest.approx([float(schedule(it)) for it in its], rel=1e-6)


def test_the_commands_it_times_run_as_a_users_would(monkeypatch):
    """Without PYTHONDONTWRITEBYTECODE (which makes every start compile the project's source again), and
    with what the case adds."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = cases.user_env(JAX_COMPILATION_CACHE_DIR="/somewhere")
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["JAX_COMPILATION_CACHE_DIR"] == "/somewhere"
