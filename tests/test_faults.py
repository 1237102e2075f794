"""Every way a run can end short of its last step ends in one line and keeps the last checkpoint whole: a
reader that goes away (`| head`), a signal at any moment (start-up included), a full disk, a file that
vanishes. Each test here failed before the fix it holds."""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train import gpt as gpt_cli
from train.lib import checkpoint
from train.lib.errors import UserError

from .helpers import ROOT, SMALL

LONG = ["--steps", "1000000", "--chunk", "20", "--num-samples", "0", *SMALL]  # runs until stopped


def spawn(module, *args, stdout=subprocess.PIPE, env=None):
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, stdout=stdout,
                            stderr=subprocess.PIPE, text=True, env=env)


def no_traceback(err):
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert len(err.strip().splitlines()) <= 1, err


@pytest.mark.slow
@pytest.mark.parametrize("module, args", [
    ("train.gpt", ["--steps", "40", "--chunk", "10", *SMALL]),
    ("train.check", ["--model", "mlp"]),
    ("train.mlp", []),
    ("train.sample", []),  # given a checkpoint below
], ids=["gpt", "check", "mlp", "sample"])
def test_a_reader_that_goes_away_ends_the_command_quietly(module, args, tiny_data, tmp_path):
    """`python -m ... | head -1`: the pipe's reader is gone before the command writes; no BrokenPipeError."""
    if module == "train.gpt":
        args = ["--data", tiny_data, *args]
    if module == "train.sample":
        gpt_cli.main(["--data", str(tiny_data), "--steps", "2", "--num-samples", "0", "--out", str(tmp_path), *SMALL])
        args = ["--checkpoint", tmp_path]
    proc = spawn(module, *args)
    proc.stdout.close()  # as `| head` does once it has what it wants
    err = proc.stderr.read()
    assert proc.wait(120) == 128 + signal.SIGPIPE
    assert err == ""


@pytest.mark.slow
def test_a_reader_that_goes_away_stops_training_at_a_saved_checkpoint(tiny_data, tmp_path):
    proc = spawn("train.gpt", "--data", tiny_data, *LONG, "--out", tmp_path / "ck")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(120) == 128 + signal.SIGPIPE and err == ""
    assert checkpoint.read_checkpoint(tmp_path / "ck")[1]["step"] == 20  # the first dispatch, saved


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_at_any_moment_ends_in_one_line_and_keeps_the_checkpoint(sig, tiny_data, tmp_path):
    """A resumed run stopped at moments from its start (imports, jax starting, reading the checkpoint,
    compiling) to training: always 128 + the signal, one line, and a checkpoint that reads. The moments
    count from when Python has started and begun to import the command: a signal while the interpreter
    itself starts (its first tenth of a second or so) is Python's, before any of the project's code."""
    out = tmp_path / "ck"
    gpt_cli.main(["--data", str(tiny_data), *LONG, "--until-step", "20", "--out", str(out)])
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python = time.perf_counter() - start
    for delay in (2 * python + 0.1, 2 * python + 0.3, 2 * python + 0.7, 2 * python + 1.3, 2 * python + 2.5):
        proc = spawn("train.gpt", "--data", tiny_data, *LONG, "--out", out, "--resume")
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, (delay, err)
        no_traceback(err)
        assert err.startswith(f"stopped by {sig.name}"), (delay, err)
        assert checkpoint.read_checkpoint(out)[1]["step"] >= 20
        assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_an_output_on_a_full_disk_stops_at_a_saved_checkpoint(tiny_data, tmp_path):
    """Standard output on a full disk (/dev/full answers every write with ENOSPC)."""
    with open("/dev/full", "w") as full:
        proc = spawn("train.gpt", "--data", tiny_data, *LONG, "--out", tmp_path / "ck", stdout=full)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    no_traceback(err)
    assert re.fullmatch(r"error: stopped at step 20: its output cannot be written \(No space left on device\); "
                        r"saved to .*ck; continue with --resume\n", err)
    assert checkpoint.read_checkpoint(tmp_path / "ck")[1]["step"] == 20


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_leaves_the_last_one_whole_and_nothing_half_written(tiny_data, tmp_path,
                                                                                          monkeypatch):
    out = tmp_path / "ck"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "6", "--num-samples", "0", "--out", str(out), *SMALL,
                  "--until-step", "3"])
    before = (out / checkpoint.FILENAME).read_bytes()
    monkeypatch.setattr(os, "fsync", enospc)  # the disk fills while the new checkpoint is written
    with pytest.raises(UserError, match=r"cannot write a checkpoint to .*ck: No space left on device"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume"])
    assert (out / checkpoint.FILENAME).read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [".lock", checkpoint.FILENAME]


@pytest.mark.slow
def test_a_metrics_file_on_a_full_disk_stops_the_run_saved(tiny_data, tmp_path, monkeypatch):
    real = gpt_cli.open_metrics

    class Full:
        def __init__(self, f):
            self.f, self.lines = f, 0

        def writelines(self, lines):
            self.lines += 1
            if self.lines > 1:
                enospc()
            self.f.writelines(lines)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(gpt_cli, "open_metrics", lambda *a: Full(real(*a)))
    out = tmp_path / "ck"
    with pytest.raises(UserError, match=r"stopped at step 10: cannot write --metrics-file .*m\.jsonl "
                                        r"\(No space left on device\); saved to .*ck; continue with --resume"):
        gpt_cli.main(["--data", str(tiny_data), *LONG, "--chunk", "5", "--out", str(out),
                      "--metrics-file", str(tmp_path / "m.jsonl")])
    assert checkpoint.read_checkpoint(out)[1]["step"] == 10


@pytest.mark.slow
def test_files_that_vanish_are_one_line_errors(tiny_data, tmp_path, monkeypatch):
    """A data file or a checkpoint removed between the check that it is there and the read."""
    gpt_cli.main(["--data", str(tiny_data), "--steps", "2", "--num-samples", "0", "--out", str(tmp_path), *SMALL])
    read_bytes = Path.read_bytes

    def vanished(self):
        if self.suffix in (".txt", ".safetensors"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", vanished)
    with pytest.raises(UserError, match="data file not found"):
        gpt_cli.main(["--data", str(tiny_data), "--steps", "2", "--num-samples", "0", *SMALL])
    with pytest.raises(UserError, match="no checkpoint at"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(tmp_path), "--resume"])


@pytest.mark.slow
def test_an_out_folder_removed_while_training_is_made_again(tiny_data, tmp_path, monkeypatch):
    out, saves = tmp_path / "ck", []
    real = checkpoint.save_checkpoint

    def save(directory, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            shutil.rmtree(directory)  # someone cleans up runs/ while the run goes on
        return real(directory, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    gpt_cli.main(["--data", str(tiny_data), "--steps", "9", "--chunk", "3", "--save-every", "3", "--num-samples", "0",
                  "--out", str(out), *SMALL])
    assert len(saves) == 3 and checkpoint.read_checkpoint(out)[1]["step"] == 9


@pytest.mark.slow
def test_a_missing_jupyter_is_one_line_naming_the_extra():
    code = ("import runpy, sys; sys.modules['nbformat'] = None; sys.argv = ['notebooks', '02'];"
            "runpy.run_module('notebooks', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (2, "error: running the notebooks needs Jupyter's packages "
                                                     "(nbformat is missing): pip install -e '.[notebooks]'\n")
