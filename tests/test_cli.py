"""Every flag, every output path, and the faults a long run meets: bad values, unwritable paths, a second
run on the same folder, kill -9, SIGTERM, terminals and log files."""

import fcntl
import importlib
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from train import gpt as gpt_cli
from train.lib import checkpoint, run as runs
from train.lib.errors import UserError

from .helpers import ROOT

# Every command-line entry point: each builds its parser in a function of its own, `build_parser`.
ENTRY_POINTS = sorted(f"{path.parent.name}.{path.stem}"
                      for folder in ("train", "bench", "notebooks") for path in (ROOT / folder).glob("*.py")
                      if "def build_parser" in path.read_text())
COMMANDS = ["attention", "check", "gpt", "mlp", "sample"]  # train/*.py: the commands, beside cli.py
SMALL = ["--n-embd", "8", "--n-head", "2", "--block-size", "8", "--num-samples", "0"]


def bad_values(kind, bounds):
    """What people mistype and scripts produce, plus the values just outside the flag's stated range.
    (A float flag with no upper bound, such as --temperature, takes any finite size: a temperature of
    1e30 samples uniformly.)"""
    values = ["nan", "inf", "-inf", "1e999", "ten", ""]
    if kind is int:
        values += ["1.5", "9" * 30]
    step = 1 if kind is int else 1e-9
    if bounds["low"] is not None:
        values.append(str(bounds["low"] - step))
    if bounds["high"] is not None:
        values.append(str(bounds["high"] + step if kind is int else bounds["high"] * 10))
    values += [str(v) for v in (bounds["above"], bounds["below"]) if v is not None]
    return values


def test_the_entry_points_are_found():
    assert {"train.gpt", "train.sample", "train.mlp"} <= set(ENTRY_POINTS)


def required_args(parser):
    """A value for each required flag, so that the flag under test is the only thing wrong."""
    args = []
    for action in parser._actions:
        if action.required and action.option_strings:
            args += [action.option_strings[0], str(action.choices[0]) if action.choices else "x"]
    return args


def numeric_flags():
    for module in ENTRY_POINTS:
        parser = importlib.import_module(module).build_parser()
        for action in parser._actions:
            if action.option_strings and action.type is not None:
                yield module, required_args(parser), action


def test_every_numeric_flag_goes_through_a_checked_type():
    unchecked = [(m, a.option_strings[0]) for m, _, a in numeric_flags()
                 if a.type in (int, float)]  # a number must go through train.cli.number
    assert unchecked == []


@pytest.mark.parametrize("module, required, action", [f for f in numeric_flags() if hasattr(f[2].type, "bounds")],
                         ids=lambda x: x.option_strings[0] if hasattr(x, "option_strings") else str(x))
def test_every_numeric_flag_refuses_bad_values_before_any_work(module, required, action):
    parser = importlib.import_module(module).build_parser()
    flag = action.option_strings[0]
    for value in bad_values(action.type.kind, action.type.bounds):
        with pytest.raises(UserError, match=re.escape(f"argument {flag}: expected ") + ".* got " + re.escape(repr(value))):
            parser.parse_args([*required, f"{flag}={value}"])
    inside = action.type.bounds["low"] if action.type.bounds["low"] is not None else 1
    parser.parse_args([*required, flag, str(inside)])  # the edge of the range itself is accepted


@pytest.mark.slow
@pytest.mark.parametrize("module, argv, line", [
    ("train.gpt", ["--steps", "nan"], "error: argument --steps: expected an integer >= 1 and <= 1,000,000,000, got 'nan'"),
    ("train.gpt", ["--lr", "inf"], "error: argument --lr: expected a number <= 1e+30 and > 0, got 'inf'"),
    ("train.gpt", ["--temperature", "1e-30"], "error: argument --temperature: expected a number >= 0.001, got '1e-30'"),
    ("train.gpt", ["--rng", "numpy"], "error: argument --rng: invalid choice: 'numpy' (choose from 'python', 'jax')"),
    ("train.sample", ["--checkpoint", "x", "--temperature", "0"], "error: argument --temperature: expected a number >= 0.001, got '0'"),
    ("train.mlp", ["--steps", "-5"], "error: argument --steps: expected an integer >= 1 and <= 1,000,000, got '-5'"),
    ("train.mlp", ["--frobnicate"], "error: unrecognized arguments: --frobnicate"),
])
def test_bad_flags_are_one_line_and_exit_2(module, argv, line):
    result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=ROOT)
    assert (result.returncode, result.stderr.splitlines(), result.stdout) == (2, [line], "")


def no_work(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(runs, "prepare", refuse)


@pytest.mark.parametrize("flag", ["--out", "--metrics-file", "--plot"])
def test_unwritable_outputs_are_refused_before_training(tmp_path, monkeypatch, flag):
    no_work(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path, words in ((blocker / "sub" / "x.png", "Not a directory"), ("/proc/microjax/x.png", "No such file")):
        with pytest.raises(UserError, match=f"cannot write {flag} .*{words}"):
            gpt_cli.main([flag, str(path)])
    if flag != "--out":
        (tmp_path / "folder.png").mkdir()
        with pytest.raises(UserError, match="is a directory"):
            gpt_cli.main([flag, str(tmp_path / "folder.png")])
    else:
        with pytest.raises(UserError, match="is a file, not a folder"):
            gpt_cli.main([flag, str(blocker)])


def test_draw_path_is_checked_before_drawing(tmp_path):
    from train import mlp

    with pytest.raises(UserError, match="cannot write --draw"):
        mlp.main(["--draw", "/proc/microjax/graph.svg"])
    with pytest.raises(UserError, match=r"must end in \.dot, \.png, \.svg, \.pdf"):
        mlp.main(["--draw", str(tmp_path / "graph.txt")])


@pytest.mark.parametrize("argv", [["--plot", "loss.txt"], ["--plot", "lossplot"],
                                  ["--probe", "e", "--probe-plot", "probe.xyz"]], ids=" ".join)
def test_picture_paths_must_name_a_format_we_write(tmp_path, monkeypatch, argv):
    no_work(monkeypatch)
    argv = argv[:-1] + [str(tmp_path / argv[-1])]
    with pytest.raises(UserError, match=r"the name must end in \.png, \.svg, \.pdf"):
        gpt_cli.main(argv)


def test_attention_picture_path_is_checked_first(tmp_path):
    from train import attention

    with pytest.raises(UserError, match=r"--out .*a\.txt: the name must end in \.png, \.svg, \.pdf"):
        attention.main(["--checkpoint", str(tmp_path / "none"), "--text", "emma", "--out", str(tmp_path / "a.txt")])


@pytest.mark.slow
def test_output_folders_are_created(tiny_data, tmp_path):
    metrics, plot = tmp_path / "runs" / "a" / "metrics.jsonl", tmp_path / "plots" / "deep" / "loss.png"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "3", *SMALL, "--out", str(tmp_path / "ck" / "run"),
                  "--metrics-file", str(metrics), "--plot", str(plot)])
    assert len(metrics.read_text().splitlines()) == 3 and plot.stat().st_size > 0
    assert checkpoint.read_checkpoint(tmp_path / "ck" / "run")[1]["step"] == 3


def start(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "train.gpt", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for(condition, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def rows_of(path):
    """The loss and evaluation rows written so far (not the timing rows)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if "tokens_per_second" not in r]


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_and_the_first_finishes_whole(tiny_data, tmp_path):
    out, metrics = tmp_path / "ck", tmp_path / "m.jsonl"
    first = start(["--data", str(tiny_data), "--steps", "1000000", "--chunk", "50", *SMALL, "--out", str(out),
                   "--metrics-file", str(metrics)])
    wait_for(lambda: rows_of(metrics), first)
    second = subprocess.run([sys.executable, "-m", "train.gpt", "--data", str(tiny_data), "--out", str(out),
                             "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert second.returncode == 2 and len(second.stderr.splitlines()) == 1
    assert f"error: --out {out} is in use by a live run (pid {first.pid} on " in second.stderr
    assert "train.gpt" in second.stderr or "gpt.py" in second.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143
    tensors, meta = checkpoint.read_checkpoint(out)  # whole, and the lock file it left blocks nothing:
    gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume", "--until-step", str(meta["step"] + 5)])
    assert checkpoint.read_checkpoint(out)[1]["step"] == meta["step"] + 5


@pytest.mark.slow
def test_kill_9_then_resume_writes_every_step_once_and_the_same_plot(tiny_data, tmp_path):
    """The dead run wrote metrics past its last checkpoint; the resumed run drops them and redoes those
    steps, so its metrics file and loss plot equal an uninterrupted run's, byte for byte."""
    common = ["--data", str(tiny_data), "--steps", "1000000", "--chunk", "10", "--save-every", "50", *SMALL]
    out, metrics = tmp_path / "a", tmp_path / "a.jsonl"
    proc = start([*common, "--out", str(out), "--metrics-file", str(metrics)])

    def saved_step():
        try:
            return checkpoint.read_checkpoint(out)[1]["step"]
        except UserError:
            return 0

    while True:  # stop the process where it has written steps that no checkpoint holds yet
        wait_for(lambda: 0 < saved_step() < len(rows_of(metrics)), proc)
        proc.send_signal(signal.SIGSTOP)
        if 0 < saved_step() < len(rows_of(metrics)):
            break
        proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    step, written = saved_step(), len(rows_of(metrics))
    assert written > step > 0
    until = str(step + 30)
    gpt_cli.main([*common, "--out", str(out), "--resume", "--until-step", until, "--metrics-file", str(metrics),
                  "--plot", str(tmp_path / "a.png")])
    gpt_cli.main([*common, "--out", str(tmp_path / "b"), "--until-step", until,
                  "--metrics-file", str(tmp_path / "b.jsonl"), "--plot", str(tmp_path / "b.png")])
    assert [r["step"] for r in rows_of(metrics)] == list(range(1, step + 31))
    # byte for byte, but for the timing rows (tokens/s, MFU), which only the process that ran them writes
    timings = lambda path: [line for line in path.read_text().splitlines() if "tokens_per_second" not in line]  # noqa: E731
    assert timings(metrics) == timings(tmp_path / "b.jsonl")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_history_survives_a_checkpoint_in_training_order():
    rows = [{"step": 0, "val_loss": 3.3}, {"step": 1, "loss": 3.2}, {"step": 2, "loss": 3.1},
            {"step": 2, "val_loss": 3.0}, {"step": 3, "loss": 2.9}]
    assert checkpoint.history_rows(checkpoint.history_tensors(rows)) == rows
    assert checkpoint.history_rows({}) == []


@pytest.mark.slow
def test_resume_restores_the_history(tiny_data, tmp_path):
    base = ["--data", str(tiny_data), "--steps", "20", *SMALL, "--val-fraction", "0.25", "--eval-every", "5",
            "--out", str(tmp_path)]
    gpt_cli.main([*base, "--until-step", "10"])
    tensors, meta = checkpoint.read_checkpoint(tmp_path)
    cfg = checkpoint.resumed_config(meta, {})
    from train.lib.data import load_docs

    run, state = runs.prepare(cfg, load_docs(tiny_data), source=tiny_data)
    state, history = checkpoint.restore_run(run, state, tensors, meta)
    assert [(r["step"], sorted(r)) for r in history][:3] == [(0, ["step", "val_loss"]), (1, ["loss", "step"]),
                                                               (2, ["loss", "step"])]
    assert history[-1] == {"step": 10, "val_loss": history[-1]["val_loss"]} and len(history) == 13


@pytest.mark.slow
def test_progress_in_a_log_file_is_plain_lines(tiny_data):
    result = subprocess.run([sys.executable, "-m", "train.gpt", "--data", str(tiny_data), "--steps", "40",
                             "--chunk", "10", "--val-fraction", "0.25", "--eval-every", "20", *SMALL], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "\r" not in result.stdout
    steps = [line for line in result.stdout.splitlines() if line.startswith("step")]
    # the first dispatch compiled (or, with the program kept from an earlier run, loaded) it: its time is
    # shown as that, not as a rate (it would read a few tok/s); the held-out loss shown at step 10 is
    # step 0's, and says so
    assert re.fullmatch(r"step   10 /   40 \| loss [\d.]+ \| val [\d.]+ \(step 0\) \| epoch 0.21 \| "
                        r"(compiled|loaded) and ran in [\d.]+ s", steps[0]), steps[0]
    assert re.fullmatch(r"step   40 /   40 \| loss [\d.]+ \| val [\d.]+ \| epoch 0.83 \| [\d,]+ tok/s"
                        r"( \| MFU [\d.]+%)?", steps[-1]), steps[-1]  # MFU once the CPU rate is measured


def test_status_lines_say_when_the_held_out_loss_is_old_and_when_a_dispatch_compiled():
    from train.lib.progress import status_line

    assert status_line(100, 1000, 2.5, val=2.7, val_step=0) == "step  100 / 1000 | loss 2.5000 | val 2.7000 (step 0)"
    assert status_line(200, 1000, 2.5, val=2.6, val_step=200) == "step  200 / 1000 | loss 2.5000 | val 2.6000"
    assert status_line(100, 1000, 2.5, compile_seconds=1.234).endswith("| compiled and ran in 1.23 s")
    assert status_line(100, 1000, 2.5, compile_seconds=0.05, prepared="loaded").endswith("| loaded and ran in 0.05 s")
    assert status_line(100, 1000, 2.5, tokens_per_second=150e3, compile_seconds=None).endswith("| 150,000 tok/s")


@pytest.mark.slow
def test_progress_on_a_terminal_is_a_live_bar(tiny_data):
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "train.gpt", "--data", str(tiny_data), "--steps", "40",
                             "--chunk", "10", *SMALL], cwd=ROOT, stdout=replica, stderr=replica)
    os.close(replica)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # the terminal closed: the run is over
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(60) == 0
    screen = b"".join(chunks).decode()
    assert "\r" in screen and "%|" in screen and "40/40" in screen and "tok/s" in screen
    assert "step   40 /   40 | loss" in screen
