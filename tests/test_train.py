"""The trainer: microgpt reproduced, the scalar twin matched, resume, checkpoints, sampling, bad input."""

import os
import re
import signal
import subprocess
import sys
import time

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import gpt
from train import gpt as gpt_cli, sample as sample_cli
from train.lib import batches, checkpoint, devices, loop, run as runs, step as steps
from train.lib.config import TrainConfig
from train.lib.data import Tokenizer, load_docs
from train.lib.errors import UserError
from train.lib.sampling import probe, sample_jax
from train.lib.scalar import train_microgpt

from .helpers import GOLDEN_LOSSES, GOLDEN_SAMPLES, ROOT, SMALL, read_metrics, run_module, tree_allclose


@pytest.mark.slow
def test_default_run_reproduces_microgpt(names, tmp_path, capsys):
    metrics = tmp_path / "m.jsonl"
    gpt_cli.main(["--data", str(names), "--metrics-file", str(metrics), "--probe", "e"])
    out = capsys.readouterr().out
    rows = read_metrics(metrics)
    assert [r["step"] for r in rows] == list(range(1, 1001))
    for step, expected in GOLDEN_LOSSES.items():
        assert abs(rows[step - 1]["loss"] - expected) < 1e-6, step
    assert re.findall(r"^sample +\d+: (\w*)$", out, re.M) == GOLDEN_SAMPLES
    assert "step 1000 / 1000 | loss 2.6497" in out
    assert "num params: 4192" in out and "devices: 1 (cpu)" in out
    before, after = (max(float(p) for p in re.findall(r"([\d.]+)%", line))
                     for line in out.splitlines() if line.startswith("next character after 'e'"))
    assert before < 10 < 20 < after  # near uniform (1/27 = 3.7%) before, concentrated after


@pytest.mark.slow
def test_short_run_equals_the_scalar_twin_trained_the_same_way(names):
    docs = load_docs(names)
    flags = {"n_embd": 8, "n_head": 2, "n_layer": 2, "block_size": 8}
    *_, (_, _, ref_params) = reference = list(train_microgpt(docs, 4, seed=7, **flags))
    ref_losses = [loss for _, loss, _ in reference]
    run, state = runs.prepare(TrainConfig(seed=7, steps=4, chunk=3, **flags), docs)
    trained = loop.train(run, state)
    np.testing.assert_allclose([r["loss"] for r in trained.history], ref_losses, rtol=1e-9)
    # Adam divides each gradient by its own size, so a gradient near eps (1e-8) carries its rounding
    # (different summation orders) into the step: parameters agree to 1e-6 of the step size, lr.
    params = devices.to_host(trained.state.params)
    for name, value in ref_params.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-9, atol=1e-8, err_msg=name)


@pytest.mark.slow
def test_train_step_is_pure_jits_alone_and_is_what_the_chunk_runs(tiny_data):
    """train_step on its own, jitted: the same inputs give the same outputs (nothing is mutated), the
    step is counted, and one step of the scanned, flat-vector, donated chunk gives the same numbers."""
    run, state = runs.prepare(TrainConfig(n_embd=8, n_head=2, block_size=8, steps=3), load_docs(tiny_data))
    idx = runs.batch_indices(run, state.key, 0, 1)
    batch = batches.one_per_row(*run.data, jnp.asarray(idx[0]), jnp.float64)
    loss_fn = partial(batches.packed_loss, model=run.model, compute_dtype=jnp.float64)
    one = jax.jit(partial(steps.train_step, loss_fn=loss_fn, optimizer=run.optimizer))
    tree_state = state._replace(opt_state=run.optimizer.init(state.params))  # Adam over the dict this time
    (a, loss_a), (b, loss_b) = one(tree_state, batch), one(tree_state, batch)
    assert float(loss_a) == float(loss_b) and int(a.step) == 1 and int(tree_state.step) == 0
    chex.assert_trees_all_equal(a, b)
    assert float(jnp.max(jnp.abs(a.params["wte"] - state.params["wte"]))) > 0  # it did update
    chunk_state, losses = steps.make_train_chunk(run)(state, *run.data, runs.step_ids(run, idx))
    assert float(losses[0]) == pytest.approx(float(loss_a), rel=1e-13) and int(chunk_state.step) == 1
    tree_allclose(chunk_state.params, a.params, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--rng", "jax", "--batch-size", "4"]], ids=["python", "jax"])
def test_resume_equals_an_uninterrupted_run_exactly(tiny_data, tmp_path, mode):
    base = ["--data", str(tiny_data), "--steps", "30", "--chunk", "7", "--num-samples", "0", *SMALL, *mode]
    gpt_cli.main(base + ["--out", str(tmp_path / "a"), "--until-step", "15",
                         "--metrics-file", str(tmp_path / "a.jsonl")])
    assert checkpoint.read_checkpoint(tmp_path / "a")[1]["step"] == 15
    gpt_cli.main(base + ["--out", str(tmp_path / "a"), "--resume", "--metrics-file", str(tmp_path / "a.jsonl")])
    gpt_cli.main(base + ["--out", str(tmp_path / "b"), "--metrics-file", str(tmp_path / "b.jsonl")])
    (ta, ma), (tb, mb) = checkpoint.read_checkpoint(tmp_path / "a"), checkpoint.read_checkpoint(tmp_path / "b")
    assert ma == mb and ma["step"] == 30
    assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)
    assert read_metrics(tmp_path / "a.jsonl") == read_metrics(tmp_path / "b.jsonl")


@pytest.mark.slow
def test_checkpoint_round_trip_damage_and_mismatch(tiny_data, tmp_path):
    out = tmp_path / "ck"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "3", "--num-samples", "0", "--out", str(out), *SMALL])
    tensors, meta = checkpoint.read_checkpoint(out)
    assert meta["step"] == 3 and meta["model"]["n_embd"] == 8 and meta["vocab"] == "abcdefghij"
    assert len(meta["python_rng"][1]) == 625
    assert "params['wte']" in tensors and any(k.startswith("opt") for k in tensors)
    with pytest.raises(UserError, match="does not match: it was trained with n_embd=8, not 16"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume", "--n-embd", "16"])
    other = tmp_path / "other.txt"  # the same characters, one document fewer: another order and split
    other.write_text("\n".join(load_docs(tiny_data)[:-1]))
    with pytest.raises(UserError, match=r"trained on other data \(64 documents from .*tiny.txt, sha256 \w+…\), "
                                        r"not on this run's \(63 documents from .*other.txt"):
        gpt_cli.main(["--data", str(other), "--out", str(out), "--resume"])
    with pytest.raises(UserError, match="already holds a checkpoint; add --resume"):  # a new run never overwrites
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out)])
    with pytest.raises(UserError, match="the checkpoint is at step 3, past the 2 steps asked for"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume", "--steps", "2"])
    with pytest.raises(UserError, match="--until-step 3: the checkpoint is already at step 3"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume", "--until-step", "3"])
    _, state = runs.prepare(TrainConfig(n_embd=16, block_size=8), load_docs(tiny_data))
    with pytest.raises(UserError, match="shape"):
        checkpoint.restore(tensors, "params", state.params)
    blob = (out / checkpoint.FILENAME).read_bytes()
    for damaged in (blob[: len(blob) // 2], blob[:-1] + bytes([blob[-1] ^ 1]), b"not a checkpoint"):
        (out / checkpoint.FILENAME).write_bytes(damaged)
        with pytest.raises(UserError, match="damaged"):
            checkpoint.read_checkpoint(out)
    with pytest.raises(UserError, match="no checkpoint"):
        checkpoint.read_checkpoint(tmp_path / "nowhere")
    checkpoint.save_checkpoint(out, {"w": np.ones(2)}, {}, {"train": {"n_embd": 8, "colour": "red"}})
    with pytest.raises(UserError, match="damaged checkpoint: its training settings do not read"):
        gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume"])


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    params, opt = {"w": np.ones(3)}, {"mu": np.zeros(3)}
    checkpoint.save_checkpoint(tmp_path, params, opt, {"step": 1})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(UserError, match="cannot write a checkpoint .*disk full"):
        checkpoint.save_checkpoint(tmp_path, {"w": np.full(3, 2.0)}, opt, {"step": 2})
    tensors, meta = checkpoint.read_checkpoint(tmp_path)
    assert meta == {"step": 1} and np.array_equal(tensors["params['w']"], np.ones(3))


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "ck"
    with pytest.raises(UserError, match=r"loss is nan at step \d+: training stopped; the checkpoint .* is kept"):
        gpt_cli.main(["--data", str(tiny_data), "--rng", "jax", "--dtype", "float32", "--lr", "1e30", "--steps", "50",
                      "--chunk", "1", "--save-every", "1", "--out", str(out), *SMALL])
    tensors, meta = checkpoint.read_checkpoint(out)
    assert meta["step"] >= 1 and all(np.all(np.isfinite(t)) for t in tensors.values())


@pytest.mark.slow
def test_batched_training_lowers_the_evaluation_loss(names):
    cfg = TrainConfig(rng="jax", batch_size=32, steps=60, val_fraction=0.05, chunk=30, lr=0.02)
    run, state = runs.prepare(cfg, load_docs(names)[:4000])
    assert state.params["wte"].dtype == np.float32
    before = loop.evaluate(run, state.params)
    chunks = []
    trained = loop.train(run, state, on_chunk=chunks.append)
    assert [r["step"] for r in trained.history if "val_loss" in r] == [0, 60]
    assert [r for c in chunks for r in c.rows] == trained.history and [c.step for c in chunks] == [30, 60]
    assert loop.evaluate(run, trained.state.params) < before - 0.5


@pytest.mark.slow
def test_packing_places_every_document_once_and_keeps_the_loss(names):
    run, state = runs.prepare(TrainConfig(rng="jax", batch_size=48, dtype="float64"), load_docs(names)[:500])
    idx = runs.batch_indices(run, state.key, 0, 3)
    pairs = batches.pack(run.lengths, idx, run.cfg.block_size, run.rows)
    assert pairs.shape == (3, batches.rows_per_step(48, 1), 2) == (3, 26, 2)
    for step, docs in zip(pairs, idx):
        placed = step[step >= 0]
        assert sorted(placed) == sorted(docs)  # each document exactly once
        assert all(run.lengths[a] + (run.lengths[b] if b >= 0 else 0) <= 16 for a, b in step if a >= 0)
    rows, n = run.data
    batch = batches.unpack(rows, n, pairs[0], 48, np.float64)
    assert float(batch[-1].sum()) == pytest.approx(1.0, rel=1e-12)
    packed = batches.packed_loss(state.params, batch, run.model, np.float64)
    plain = batches.batch_loss(state.params, rows[idx[0]], n[idx[0]], run.model, np.float64)
    assert float(packed) == pytest.approx(float(plain), rel=1e-12)
    need = max(int((p[:, 0] >= 0).sum()) for p in pairs)
    assert batches.pack(run.lengths, idx, 16, rows=2, multiple=5).shape[1] == -(-need // 5) * 5  # grows when needed


@pytest.mark.slow
def test_epochs_set_the_number_of_steps(tiny_data):
    run, state = runs.prepare(TrainConfig(rng="jax", batch_size=8, epochs=2.5, block_size=8), load_docs(tiny_data))
    assert run.total_steps == 20  # 64 documents / 8 = 8 steps an epoch
    idx = runs.batch_indices(run, state.key, 0, 16)
    assert sorted(idx[:8].ravel()) == list(range(64)) and sorted(idx[8:].ravel()) == list(range(64))
    assert not np.array_equal(idx[:8], idx[8:])  # a fresh permutation each epoch


@pytest.mark.slow
def test_sampling_is_reproducible_and_honours_the_prompt(tiny_data, tmp_path, capsys):
    out = tmp_path / "ck"
    gpt_cli.main(["--data", str(tiny_data), "--rng", "jax", "--steps", "20", "--num-samples", "3",
                  "--out", str(out), *SMALL])
    capsys.readouterr()
    draws = []
    for seed in ("1", "1", "2"):
        sample_cli.main(["--checkpoint", str(out), "--seed", seed, "--num-samples", "8", "--prompt", "ab"])
        draws.append(capsys.readouterr().out)
    assert draws[0] == draws[1] != draws[2]
    names = re.findall(r"^sample +\d+: (\w*)$", draws[0], re.M)
    assert len(names) == 8 and all(n.startswith("ab") for n in names)
    with pytest.raises(UserError, match=r"'z' .* not in the vocabulary"):
        sample_cli.main(["--checkpoint", str(out), "--prompt", "az"])
    with pytest.raises(UserError, match="longer than the model's context"):
        sample_cli.main(["--checkpoint", str(out), "--prompt", "a" * 8])


@pytest.mark.slow
def test_jax_sampler_is_deterministic_and_stays_in_the_vocabulary():
    config = gpt.GPTConfig(5, 8, 2, 1, 6)
    params = gpt.init(jax.random.PRNGKey(0), config, np.float64)
    tok = Tokenizer("abcd")
    a = sample_jax(params, config, tok, jax.random.PRNGKey(3), 16, 1.0)
    assert a == sample_jax(params, config, tok, jax.random.PRNGKey(3), 16, 1.0)
    assert all(len(n) <= config.block_size and set(n) <= set("abcd") for n in a)
    dist = probe(params, config, tok, "ab", top=5)
    assert sum(p for _, p in dist) == pytest.approx(1.0) and dist[0][1] >= dist[-1][1]


@pytest.mark.slow
def test_metrics_and_plot(tiny_data, tmp_path):
    png, metrics = tmp_path / "loss.png", tmp_path / "m.jsonl"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "12", "--val-fraction", "0.25", "--eval-every", "5",
                  "--num-samples", "0", "--plot", str(png), "--metrics-file", str(metrics), *SMALL])
    rows = read_metrics(metrics)
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    assert [r["step"] for r in rows if "val_loss" in r] == [0, 5, 10, 12]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "4", "--val-fraction", "0.25", "--eval-every", "0",
                  "--num-samples", "0", "--metrics-file", str(metrics), *SMALL])
    assert [r["step"] for r in read_metrics(metrics)] == [1, 2, 3, 4]  # --eval-every 0: no evaluation


# bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--n-embd", "10", "--n-head", "3"], "divisible"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--n-embd", "60000", "--n-head", "1", "--n-layer", "1024", "--block-size", "8"], "GiB, more than the"),
    (["--batch-size", "100"], "larger than the 64 training documents"),
    (["--resume"], "--resume needs --out"),
    (["--devices", "3"], "--devices 3"),
    (["--save-every", "5"], "--save-every needs --out"),
    (["--steps", "5", "--epochs", "2"], "give --steps or --epochs, not both"),
])
def test_impossible_settings_are_clear_errors(tiny_data, argv, words):
    with pytest.raises(UserError, match=re.escape(words)):
        gpt_cli.main(["--data", str(tiny_data), *argv])


@pytest.mark.slow
def test_errors_are_one_line_without_traceback(tmp_path):
    result = run_module("train.gpt", "--data", str(tmp_path / "missing.txt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: data file not found: {tmp_path / 'missing.txt'}"]
    result = run_module("train.sample", "--checkpoint", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: no checkpoint at")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_saves_and_the_run_resumes(tiny_data, tmp_path, sig, status):
    out = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "train.gpt", "--data", str(tiny_data), "--steps", "1000000",
                             "--chunk", "50", "--out", str(out), *SMALL], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buffer = ""
    while "step" not in buffer:  # wait until training is under way
        buffer += proc.stdout.read(1)
        assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert re.search(rf"stopped by {sig.name} at step \d+; saved to .*; continue with --resume", err)
    step = checkpoint.read_checkpoint(out)[1]["step"]
    assert step > 0 and step % 50 == 0
    gpt_cli.main(["--data", str(tiny_data), "--out", str(out), "--resume", "--until-step", str(step + 5),
                  "--num-samples", "0"])
    assert checkpoint.read_checkpoint(out)[1]["step"] == step + 5
