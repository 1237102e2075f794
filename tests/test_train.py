"""The trainer: microgpt reproduced, the scalar twin matched, resume, checkpoints, sampling, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from models import gpt
from train import batches, checkpoint, devices, gpt as gpt_cli, loop, sample as sample_cli, trainer
from train.cli import UserError
from train.data import Tokenizer, encode_docs, load_docs, resolve_data_path
from train.sampling import probe, sample_jax
from train.scalar import train_microgpt

from .conftest import ROOT

# microgpt.py's published losses (../shared/reference/microgpt.md) and its 20 samples
GOLDEN_LOSSES = {1: 3.365966947585, 2: 3.424272783872, 3: 3.177802125458, 100: 3.366930921179,
                 200: 2.309743303752, 300: 2.317845353077, 400: 2.342847375394, 500: 2.064466206727,
                 600: 2.485056105942, 700: 2.335729604323, 800: 2.263217700069, 900: 2.778503547873,
                 1000: 2.649694469741}
GOLDEN_SAMPLES = ("kamon ann karai jaire vialan karia yeran anna areli kaina "
                  "konna keylen liole alerin earan lenne kana lara alela anton").split()
SMALL = ["--n-embd", "8", "--n-head", "2", "--block-size", "8"]


def read_metrics(path):
    return [json.loads(line) for line in open(path)]


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


def test_short_run_equals_the_scalar_twin_trained_the_same_way(names):
    docs = load_docs(names)
    flags = {"n_embd": 8, "n_head": 2, "n_layer": 2, "block_size": 8}
    *_, (_, _, ref_params) = reference = list(train_microgpt(docs, 4, seed=7, **flags))
    ref_losses = [loss for _, loss, _ in reference]
    run = trainer.prepare(trainer.TrainConfig(seed=7, steps=4, chunk=3, **flags), docs)
    losses = []
    loop.train(run, on_chunk=lambda run, rows, tps: losses.extend(r["loss"] for r in rows))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-9)
    # Adam divides each gradient by its own size, so a gradient near eps (1e-8) carries its rounding
    # (different summation orders) into the step: parameters agree to 1e-6 of the step size, lr.
    params = devices.to_host(run.params)
    for name, value in ref_params.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-9, atol=1e-8, err_msg=name)


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
    run = trainer.prepare(trainer.TrainConfig(n_embd=16, block_size=8), load_docs(tiny_data))
    with pytest.raises(UserError, match="shape"):
        checkpoint.restore(tensors, "params", run.params)
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


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "ck"
    with pytest.raises(UserError, match=r"loss is nan at step \d+: training stopped; the checkpoint .* is kept"):
        gpt_cli.main(["--data", str(tiny_data), "--rng", "jax", "--dtype", "float32", "--lr", "1e30", "--steps", "50",
                      "--chunk", "1", "--save-every", "1", "--out", str(out), *SMALL])
    tensors, meta = checkpoint.read_checkpoint(out)
    assert meta["step"] >= 1 and all(np.all(np.isfinite(t)) for t in tensors.values())


def test_batched_training_lowers_the_evaluation_loss(names):
    cfg = trainer.TrainConfig(rng="jax", batch_size=32, steps=60, val_fraction=0.05, chunk=30, lr=0.02)
    run = trainer.prepare(cfg, load_docs(names)[:4000])
    assert run.params["wte"].dtype == np.float32
    before = loop.evaluate(run)
    rows = []
    loop.train(run, on_chunk=lambda run, r, tps: rows.extend(r))
    assert [r["step"] for r in rows if "val_loss" in r] == [0, 60]
    assert loop.evaluate(run) < before - 0.5


def test_packing_places_every_document_once_and_keeps_the_loss(names):
    run = trainer.prepare(trainer.TrainConfig(rng="jax", batch_size=48, dtype="float64"), load_docs(names)[:500])
    idx = trainer.batch_indices(run, 0, 3)
    pairs = batches.pack(run.lengths, idx, run.cfg.block_size, run.rows)
    assert pairs.shape == (3, batches.rows_per_step(48, 1), 2) == (3, 26, 2)
    for step, docs in zip(pairs, idx):
        placed = step[step >= 0]
        assert sorted(placed) == sorted(docs)  # each document exactly once
        assert all(run.lengths[a] + (run.lengths[b] if b >= 0 else 0) <= 16 for a, b in step if a >= 0)
    rows, n = run.data
    batch = batches.unpack(rows, n, pairs[0], 48, np.float64)
    assert float(batch[-1].sum()) == pytest.approx(1.0, rel=1e-12)
    packed = batches.packed_loss(run.params, batch, run.model, np.float64)
    plain = batches.batch_loss(run.params, rows[idx[0]], n[idx[0]], run.model, np.float64)
    assert float(packed) == pytest.approx(float(plain), rel=1e-12)
    need = max(int((p[:, 0] >= 0).sum()) for p in pairs)
    assert batches.pack(run.lengths, idx, 16, rows=2, multiple=5).shape[1] == -(-need // 5) * 5  # grows when needed


def test_epochs_set_the_number_of_steps(tiny_data):
    run = trainer.prepare(trainer.TrainConfig(rng="jax", batch_size=8, epochs=2.5, block_size=8), load_docs(tiny_data))
    assert run.total_steps == 20  # 64 documents / 8 = 8 steps an epoch
    idx = trainer.batch_indices(run, 0, 16)
    assert sorted(idx[:8].ravel()) == list(range(64)) and sorted(idx[8:].ravel()) == list(range(64))
    assert not np.array_equal(idx[:8], idx[8:])  # a fresh permutation each epoch


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


def test_jax_sampler_is_deterministic_and_stays_in_the_vocabulary():
    config = gpt.GPTConfig(5, 8, 2, 1, 6)
    params = gpt.init(jax.random.PRNGKey(0), config, np.float64)
    tok = Tokenizer("abcd")
    a = sample_jax(params, config, tok, jax.random.PRNGKey(3), 16, 1.0)
    assert a == sample_jax(params, config, tok, jax.random.PRNGKey(3), 16, 1.0)
    assert all(len(n) <= config.block_size and set(n) <= set("abcd") for n in a)
    dist = probe(params, config, tok, "ab", top=5)
    assert sum(p for _, p in dist) == pytest.approx(1.0) and dist[0][1] >= dist[-1][1]


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


# data and bad input ---------------------------------------------------------------------------------
def test_documents_tokenizer_and_truncation(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("  ab \n\n abcd\nabcdefg\n   \n")
    docs = load_docs(path)
    assert docs == ["ab", "abcd", "abcdefg"]
    tok = Tokenizer.from_docs(docs)
    assert tok.chars == "abcdefg" and tok.bos == 7 and tok.vocab_size == 8
    assert tok.decode(tok.encode("bad")) == "bad"
    rows, n, truncated = encode_docs(docs, tok, block_size=4)
    assert truncated == 2 and n.tolist() == [3, 4, 4]
    assert rows[0].tolist() == [7, 0, 1, 7, 7] and rows[2].tolist() == [7, 0, 1, 2, 3]


@pytest.mark.parametrize("content, words", [
    (None, "not found"), (b"", "no documents"), (b"  \n \n", "no documents"), (b"ab\n\xff\xfe\n", "not UTF-8"),
])
def test_bad_data_files(tmp_path, content, words):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        load_docs(path)
    with pytest.raises(UserError, match="directory"):
        load_docs(tmp_path)


def test_the_names_ship_with_the_package_and_flags_and_environment_still_win(tmp_path, monkeypatch):
    import hashlib

    from train.data import NAMES_SHA256, embedded_names

    shipped = embedded_names()
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == NAMES_SHA256
    assert len(load_docs(shipped)) == 32033
    monkeypatch.delenv("MICROJAX_DATA", raising=False)
    assert resolve_data_path() == shipped
    monkeypatch.setenv("MICROJAX_DATA", str(tmp_path / "env.txt"))
    assert resolve_data_path() == tmp_path / "env.txt"
    assert resolve_data_path(tmp_path / "flag.txt") == tmp_path / "flag.txt"


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


def run_module(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, **kwargs)


def test_errors_are_one_line_without_traceback(tmp_path):
    result = run_module("train.gpt", "--data", str(tmp_path / "missing.txt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: data file not found: {tmp_path / 'missing.txt'}"]
    result = run_module("train.sample", "--checkpoint", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: no checkpoint at")
    assert len(result.stderr.strip().splitlines()) == 1


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
