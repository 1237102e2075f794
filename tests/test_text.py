"""Training on one continuous text (--format text) and the presets: the data as nanoGPT's shakespeare_char
prepares it, windows that are slices of the text, a resumed run equal to an unbroken one, the best-val
checkpoint, and what a preset records."""

import hashlib
import json

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

from train import gpt as gpt_cli
from train.lib import checkpoint, presets, run as runs, text
from train.lib.config import TrainConfig
from train.lib.errors import UserError

from .helpers import read_metrics, run_module

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
# a small text model that compiles in a moment, on the shakespeare-char-cpu preset's features
SMALL_TEXT = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
              "--eval-iters", "2", "--num-samples", "0"]


def test_the_shipped_shakespeare_is_nanogpts_file():
    path = presets.data_set("shakespeare-char-cpu")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHAKESPEARE_SHA256
    data = text.load_text(path)
    tok = text.tokenizer_of(data)
    assert (len(data), tok.vocab_size, tok.bos) == (1_115_394, 65, None)  # nanoGPT's prepare.py prints these
    train, val = text.split(tok.encode_array(data), 0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)


def test_vocabulary_encoding_and_split_on_a_small_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"ba\r\ncab\rba\n")  # Windows and old Mac line ends read as "\n"
    data = text.load_text(path)
    assert data == "ba\ncab\nba\n"
    tok = text.tokenizer_of(data)
    assert (tok.chars, tok.vocab_size) == ("\nabc", 4)
    tokens = tok.encode_array(data)
    assert tokens.tolist() == [tok.chars.index(c) for c in data]
    assert tok.decode(tokens.tolist()) == data
    train, val = text.split(tokens, 0.1)
    assert (len(train), len(val)) == (9, 1) and np.concatenate([train, val]).tolist() == tokens.tolist()
    with pytest.raises(UserError, match="'z' is not in the vocabulary"):
        tok.encode_array("abz")


def test_windows_are_slices_and_the_whole_split_is_each_target_once():
    tokens = np.arange(100)
    rows = text.windows(tokens, np.array([[0, 7], [90, 3]]), 9)
    assert rows.shape == (2, 2, 10) and rows[1, 0].tolist() == list(range(90, 100))
    starts = text.whole_split_starts(100, 8)
    targets = np.concatenate([text.windows(tokens, starts, 8)[:, 1:].ravel()])
    assert len(set(targets.tolist())) == len(targets) and targets.min() == 1 and len(targets) == 96


@pytest.mark.slow
def test_a_text_run_trains_on_random_windows_of_its_training_split():
    data = "".join(np.random.default_rng(1).choice(list("abcdefgh \n"), size=2000))
    cfg = TrainConfig(**{**presets.settings("shakespeare-char-cpu"), "n_layer": 1, "n_embd": 8, "n_head": 2,
                         "block_size": 8, "steps": 4, "dtype": "float64", "eval_every": 0, "warmup": 1})
    run, state = runs.prepare(cfg, data)
    assert run.is_text and run.train_tokens == 1800 and run.val_data[0].shape == (200,)
    assert run.steps_per_epoch == 1800 // (12 * 8)
    ids, tokens = runs.chunk_inputs(run, state.key, 2, 2)
    assert np.asarray(ids).tolist() == [2, 3] and tokens == 2 * 12 * 8


@pytest.mark.parametrize("overrides, message", [
    ({"format": "text"}, "add --rng jax"),
    ({**presets.settings("shakespeare-char-cpu"), "block_size": 4000}, "too few for one window"),
])
def test_bad_text_settings_are_one_line_before_any_work(overrides, message):
    with pytest.raises(UserError, match=message):
        runs.prepare(TrainConfig(**overrides), "to be or not to be, that is the question\n" * 50)


def test_presets_are_listed_and_flags_override_them(capsys):
    with pytest.raises(SystemExit):
        gpt_cli.build_parser().parse_args(["--help"])
    help_text = capsys.readouterr().out
    for name in presets.PRESETS:
        assert name in help_text
    with pytest.raises(UserError, match="preset must be one of|invalid choice"):
        gpt_cli.main(["--preset", "nope"])
    cfg = TrainConfig(**presets.settings("shakespeare-char-cpu"))
    assert (cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.batch_size, cfg.steps, cfg.lr, cfg.min_lr, cfg.warmup,
            cfg.beta2, cfg.dropout, cfg.eval_every, cfg.eval_iters) == (4, 128, 64, 12, 2000, 1e-3, 1e-4, 100, 0.99,
                                                                       0.0, 250, 20)
    assert TrainConfig(**presets.settings("microgpt")) == TrainConfig()  # the default preset changes nothing


def test_keep_best_needs_out():
    with pytest.raises(UserError, match="--keep-best needs --out"):
        gpt_cli.main(["--keep-best"])


@pytest.fixture
def small_text(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(presets.data_set("shakespeare-char-cpu").read_text()[:30_000])
    return path


@pytest.mark.slow
def test_a_resumed_text_run_equals_an_unbroken_one_and_keeps_the_best(small_text, tmp_path):
    """Bit for bit, with dropout on (its keys come from the step, as the windows do), and --keep-best's
    checkpoint is the step of the lowest recorded val loss."""
    common = ["--preset", "shakespeare-char-cpu", "--data", str(small_text), *SMALL_TEXT, "--steps", "40",
              "--eval-every", "10", "--dropout", "0.1", "--chunk", "10", "--warmup", "5"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for args in ([*common, "--out", str(whole), "--keep-best", "--metrics-file", str(tmp_path / "a.jsonl")],
                 [*common, "--out", str(broken), "--until-step", "20", "--metrics-file", str(tmp_path / "b.jsonl")],
                 [*common, "--out", str(broken), "--resume", "--metrics-file", str(tmp_path / "b.jsonl")]):
        result = run_module("train.gpt", *args)
        assert result.returncode == 0, result.stderr
    a, b = read_metrics(tmp_path / "a.jsonl"), read_metrics(tmp_path / "b.jsonl")
    assert a == b and any("val_whole" in r for r in a) and any("train_loss" in r for r in a)
    ta, tb = (load_file(d / checkpoint.FILENAME) for d in (whole, broken))
    for k in ta:
        if k.startswith("params"):
            np.testing.assert_array_equal(ta[k], tb[k])
    evals = [r for r in a if "val_loss" in r and r["step"] > 0]
    best_step = min(evals, key=lambda r: r["val_loss"])["step"]
    _, meta = checkpoint.read_checkpoint(whole / "best")
    assert meta["step"] == best_step
    assert meta["train"]["preset"] == "shakespeare-char-cpu" and meta["train"]["dropout"] == 0.1
    assert meta["train"]["format"] == "text" and meta["bos"] is False and meta["compute_dtype"] == "float32"


@pytest.mark.slow
def test_a_lines_file_with_long_documents_says_so_once_with_the_flag(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("\n".join(["a" * 40, "bb", "c" * 30, "dd"] * 8) + "\n")
    result = run_module("train.gpt", "--data", str(path), "--steps", "2", "--num-samples", "0", "--n-embd", "8",
                        "--n-head", "2")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "longer than the context" in line]
    assert len(notes) == 1 and "16 documents" in notes[0] and "--block-size 41" in notes[0]
    assert "--format text" in notes[0]
