"""Streamed text from a text model (train/lib/generate.py) against nanoGPT's `generate` written out
plainly: crop the sequence to block_size, run the whole model, draw; and `train.sample` on a text
checkpoint."""

import dataclasses
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import gpt
from train import sample as sample_cli
from train.lib import checkpoint, generate
from train.lib.data import Tokenizer
from train.lib.errors import UserError

from .helpers import ROOT

CONFIG = gpt.GPTConfig(vocab_size=7, n_embd=8, n_head=2, n_layer=2, block_size=5)
TOKENIZER = Tokenizer("\nabcdef", has_bos=False)
_apply = jax.jit(gpt.apply, static_argnums=2)  # the reference's forward, one trace per window length


def params64(seed=0, config=CONFIG):
    """Random weights drawn by numpy (no JAX work to compile), lm_head large enough for peaked
    distributions as well as flat ones."""
    rng = np.random.default_rng(seed)
    params = {name: 0.08 * rng.normal(size=shape) for name, shape in gpt.param_shapes(config).items()}
    return {**params, "lm_head": params["lm_head"] * 10}


def nanogpt_generate(params, start, n, temperature, key, top_k=None):
    """nanoGPT's `generate`: crop to the last block_size tokens, the whole model, the last position's
    logits / temperature, top-k by sorting, one categorical draw with key fold_in(key, i)."""
    idx = TOKENIZER.encode(start)
    for i in range(n):
        logits = np.asarray(_apply(params, jnp.asarray(idx[-CONFIG.block_size :]), CONFIG)[-1]) / temperature
        if top_k is not None:
            logits[logits < np.sort(logits)[-min(top_k, len(logits))]] = -np.inf
        idx.append(int(jax.random.categorical(jax.random.fold_in(key, i), jnp.asarray(logits))))
    return TOKENIZER.decode(idx[len(start):])


@pytest.mark.slow  # compiles the stream's steps, and the reference at each window length
@pytest.mark.parametrize("prompt, temperature, top_k", [
    ("ab", 1.0, None),  # 2 tokens: the cache for 4 draws, then the cropped window
    ("", 0.05, None),  # from "\n", nearly greedy
    ("fedcbafed", 3.0, 3),  # longer than the context: cropped before the first draw; flat, so the 3rd is drawn
    ("c", 2.0, 100),  # top_k past the vocabulary: all of it, as nanoGPT's min(top_k, vocab)
])
def test_stream_draws_what_cropping_and_the_whole_model_draw(prompt, temperature, top_k):
    params, key = params64(), jax.random.PRNGKey(3)
    ours = list(generate.stream(params, CONFIG, TOKENIZER, key, prompt, 12, temperature, top_k))
    assert all(len(c) == 1 for c in ours) and len(ours) == 12
    assert "".join(ours) == nanogpt_generate(params, prompt or "\n", 12, temperature, key, top_k)


@pytest.mark.slow
def test_the_draws_depend_on_the_key_and_a_second_call_does_not_retrace():
    """Another prompt, key, temperature and top_k: the same three traces."""
    params = params64()
    first = "".join(generate.stream(params, CONFIG, TOKENIZER, jax.random.PRNGKey(0), "ab", 12, 1.0))
    pieces = generate._steps(CONFIG)
    sizes = [f._cache_size() for f in pieces]
    assert sizes == [1, 1, 1]
    second = "".join(generate.stream(params, CONFIG, TOKENIZER, jax.random.PRNGKey(1), "dcb", 12, 0.7, top_k=3))
    assert first != second
    assert [f._cache_size() for f in generate._steps(CONFIG)] == sizes and generate._steps(CONFIG) is pieces


@pytest.mark.slow
def test_an_empty_prompt_without_a_newline_in_the_vocabulary_starts_from_the_first_character():
    tokenizer = Tokenizer("abcdefg", has_bos=False)
    params, key = params64(), jax.random.PRNGKey(5)
    ours = "".join(generate.stream(params, CONFIG, tokenizer, key, "", 8, 1.0))
    assert TOKENIZER.decode(tokenizer.encode(ours)) == nanogpt_generate(params, "\n", 8, 1.0, key)  # same ids


def test_cache_logits_equal_the_whole_models():
    """What makes the cache path and the window path interchangeable while the sequence fits."""
    params = params64(1)
    tokens = [1, 4, 2, 6, 3]
    step = jax.jit(gpt.decode_step, static_argnums=4)  # one trace, not one per eager op
    cache, got = gpt.init_cache(CONFIG, jnp.float64), []
    for pos, t in enumerate(tokens):
        logits, cache = step(params, cache, t, pos, CONFIG)
        got.append(logits)
    np.testing.assert_allclose(np.stack(got), _apply(params, jnp.asarray(tokens), CONFIG), rtol=1e-12, atol=1e-12)


def test_a_prompt_outside_the_vocabulary_is_refused_before_any_work():
    with pytest.raises(UserError, match="'z'"):
        generate.stream(None, CONFIG, TOKENIZER, jax.random.PRNGKey(0), "abz", 5, 1.0)  # no params touched


def save(directory, tokenizer, dtype=np.float64):
    config = dataclasses.replace(CONFIG, vocab_size=tokenizer.vocab_size)
    params = {name: p.astype(dtype) for name, p in params64(0, config).items()}
    meta = {"step": 0, "model": dataclasses.asdict(config), "vocab": tokenizer.chars, "bos": tokenizer.has_bos}
    checkpoint.save_checkpoint(directory, params, {}, meta)
    return directory


@pytest.mark.slow
def test_sample_streams_a_text_model_after_its_prompt(tmp_path, capsys):
    """In float64, so that it reuses what the tests above compiled."""
    ck = str(save(tmp_path, TOKENIZER))
    sample_cli.main(["--checkpoint", ck, "--prompt", "bad", "--max-new-tokens", "30", "--num-samples", "2"])
    first, second = capsys.readouterr().out.split("\n---\n")
    assert first.startswith("bad") and second.startswith("bad") and len(first) == 33 and first != second
    assert second.endswith("\n") and len(second) == 34
    sample_cli.main(["--checkpoint", ck, "--seed", "4", "--top-k", "2"])  # 500 characters from "\n" by default
    out = capsys.readouterr().out
    assert len(out) == 501 and set(out) <= set(TOKENIZER.chars)
    with pytest.raises(UserError, match="'xyz'"):
        sample_cli.main(["--checkpoint", ck, "--prompt", "xyz"])
    assert capsys.readouterr().out == ""  # refused before the prompt is printed


def test_a_names_model_refuses_the_text_flags(tmp_path):
    ck = str(save(tmp_path, Tokenizer("\nabcde")))
    with pytest.raises(UserError, match="a names model ends each name at BOS; --max-new-tokens is for text"):
        sample_cli.main(["--checkpoint", ck, "--max-new-tokens", "5"])
    with pytest.raises(UserError, match="--top-k is for text models"):
        sample_cli.main(["--checkpoint", ck, "--top-k", "2"])


@pytest.mark.slow
def test_a_stream_into_head_ends_quietly(tmp_path):
    """`python -m train.sample ... | head -c 20`: the reader leaves mid-stream; 141 and nothing on stderr."""
    ck = save(tmp_path, TOKENIZER, np.float32)  # as trained: the draws in float32
    proc = subprocess.Popen([sys.executable, "-m", "train.sample", "--checkpoint", str(ck), "--prompt", "ab",
                             "--max-new-tokens", "1000000"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(20)
    proc.stdout.close()  # as `head -c 20` does once it has its 20 bytes
    err = proc.stderr.read()
    assert proc.wait(120) == 128 + signal.SIGPIPE and err == b""
    assert head.startswith(b"ab") and len(head) == 20
