"""Data-parallel training on JAX's sharding: 8 forced CPU devices and two processes on loopback.

Each case runs `python -m train.gpt` in a subprocess, since the device count is fixed when jax starts.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from train.lib import checkpoint

from .helpers import GOLDEN_LOSSES, ROOT

pytestmark = pytest.mark.slow  # every case starts python -m train.gpt processes

BATCHED = ["--rng", "jax", "--batch-size", "64", "--chunk", "25", "--num-samples", "0"]


def train(*args, devices=8, env=None):
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "train.gpt", *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def losses(path):
    return np.array([r["loss"] for r in map(json.loads, open(path)) if "loss" in r])


def test_eight_devices_match_one_and_split_the_batch(names, tmp_path):
    out8 = finish(train("--data", names, *BATCHED, "--steps", 50, "--metrics-file", tmp_path / "8.jsonl"))
    out1 = finish(train("--data", names, *BATCHED, "--steps", 50, "--metrics-file", tmp_path / "1.jsonl",
                        "--devices", 1))
    assert "devices: 8 (cpu)" in out8 and "devices: 1 of 8 (cpu)" in out1
    bad = train("--data", names, "--rng", "jax", "--batch-size", 12)
    assert bad.communicate(timeout=120)[1].strip() == ("error: batch size 12 does not divide over 8 devices "
                                                        "(JAX_NUM_CPU_DEVICES=8 is set); use a multiple of 8 "
                                                        "or --devices 6")
    l8, l1 = losses(tmp_path / "8.jsonl"), losses(tmp_path / "1.jsonl")
    assert len(l8) == 50
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    # the compiled step itself: on 8 devices each one gets 1/8 of the packed rows and runs only those
    code = ("import numpy as np\n"
            "from train.lib import run as runs, step\nfrom train.lib.config import TrainConfig\n"
            "from train.lib.data import load_docs\n"
            f"run, state = runs.prepare(TrainConfig(rng='jax', batch_size=64), load_docs({str(names)!r})[:512])\n"
            "ids = runs.step_ids(run, runs.batch_indices(run, state.key, 0, 4))\n"
            "print(ids.shape, [s.data.shape for s in ids.addressable_shards])\n"
            "chunk = step.make_train_chunk(run)\n"
            "print(chunk.lower(state, *run.data, ids).compile().as_text())\n")
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8"}
    hlo = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    shapes = hlo.stdout.splitlines()[0]
    assert shapes == f"(4, 40, 2) {[(4, 5, 2)] * 8}"  # 64 names in 40 rows (34, rounded up to 8 devices)
    assert "f32[5,16,27]" in hlo.stdout and "f32[40,16,27]" not in hlo.stdout  # per-device logits


def test_the_main_job_runs_with_eight_devices_left_set(names, tmp_path):
    """JAX_NUM_CPU_DEVICES=8 left in the shell from the block above: microgpt's one document a step
    cannot be split, so the job takes one device and says so, with microgpt's losses."""
    out = finish(train("--data", names, "--until-step", 100, "--num-samples", 0, "--metrics-file", tmp_path / "m.jsonl"))
    assert out.startswith("devices: 1 of 8 (cpu)\n")
    assert losses(tmp_path / "m.jsonl")[99] == pytest.approx(GOLDEN_LOSSES[100], abs=1e-7)


def test_checkpoints_move_between_eight_devices_and_one(names, tmp_path):
    common = ["--data", names, *BATCHED, "--steps", 40, "--val-fraction", 0.02]
    finish(train(*common, "--out", tmp_path / "whole", devices=1))
    for first, second in ((8, 1), (1, 8)):
        out = tmp_path / f"{first}-{second}"
        finish(train(*common, "--out", out, "--until-step", 20, devices=first))
        finish(train(*common, "--out", out, "--resume", devices=second))
        (a, meta), (b, _) = checkpoint.read_checkpoint(out), checkpoint.read_checkpoint(tmp_path / "whole")
        assert meta["step"] == 40
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6, err_msg=name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_loopback_agree_with_one(names, tmp_path):
    common = ["--data", names, "--rng", "jax", "--batch-size", 8, "--steps", 20, "--chunk", 10, "--num-samples", 0]
    address = f"127.0.0.1:{free_port()}"
    procs = [train(*common, "--metrics-file", tmp_path / f"p{i}.jsonl", devices=1,
                   env={"JAX_COORDINATOR_ADDRESS": address, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
             for i in range(2)]
    outs = [finish(p) for p in procs]
    assert "devices: 2 (cpu)" in outs[0] and "step" not in outs[1]  # process 1 trains quietly
    assert not (tmp_path / "p1.jsonl").exists()
    finish(train(*common, "--metrics-file", tmp_path / "single.jsonl", devices=1))
    np.testing.assert_allclose(losses(tmp_path / "p0.jsonl"), losses(tmp_path / "single.jsonl"), rtol=1e-5)


def test_bfloat16_trains_within_two_percent_of_float32(names, tmp_path):
    common = ["--data", names, *BATCHED, "--batch-size", 32, "--steps", 150, "--val-fraction", 0.05,
              "--eval-every", 150, "--lr", 0.02]
    procs = {d: train(*common, "--dtype", d, "--metrics-file", tmp_path / f"{d}.jsonl", "--out", tmp_path / d,
                      devices=2) for d in ("bfloat16", "float32")}
    for p in procs.values():
        finish(p)
    val = {d: [r["val_loss"] for r in map(json.loads, open(tmp_path / f"{d}.jsonl")) if "val_loss" in r]
           for d in procs}
    assert val["bfloat16"][-1] < val["bfloat16"][0] - 0.5  # it learns
    assert abs(val["bfloat16"][-1] - val["float32"][-1]) < 0.02 * val["float32"][-1]
    tensors, _ = checkpoint.read_checkpoint(tmp_path / "bfloat16")
    assert all(t.dtype == np.float32 for name, t in tensors.items()  # master weights and Adam state
               if name.startswith(("params", "opt")) and not name.endswith("count"))
