"""The training features of issue 17, each against a hand computation: nanoGPT's learning-rate schedule,
AdamW's decay mask, clipping by global norm, dropout (off: exactly the model without it), and gradient
accumulation (one step of N batches equals one step of their union). float64 throughout."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import gpt
from train.lib import presets, run as runs, step as steps
from train.lib.batches import packed_loss, text_batch
from train.lib.config import TrainConfig
from train.lib.optim import decay_mask, learning_rate, make_optimizer

SHAKESPEARE = TrainConfig(**presets.settings("shakespeare-char-cpu"))


def nanogpt_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay_iters=2000):
    """nanoGPT's get_lr, as train.py writes it."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@pytest.mark.parametrize("it", [0, 1, 50, 99, 100, 101, 700, 1050, 1999, 2000])
def test_warmup_and_cosine_are_nanogpts(it):
    schedule = learning_rate(SHAKESPEARE, SHAKESPEARE.steps)
    assert float(schedule(it)) == pytest.approx(nanogpt_lr(it), rel=1e-12)


def test_microgpt_keeps_its_linear_decay_to_zero():
    schedule = learning_rate(TrainConfig(), 1000)
    for t in (0, 1, 500, 999, 1000):
        assert float(schedule(t)) == pytest.approx(0.01 * (1 - t / 1000), rel=1e-12, abs=1e-15)


def test_linear_decay_to_min_lr_after_a_warmup():
    cfg = TrainConfig(lr=0.02, min_lr=0.002, warmup=10)
    schedule = learning_rate(cfg, 110)
    assert float(schedule(0)) == pytest.approx(0.02 / 11, rel=1e-12)
    assert float(schedule(10)) == pytest.approx(0.02, rel=1e-12)
    assert float(schedule(60)) == pytest.approx(0.011, rel=1e-12)
    assert float(schedule(110)) == pytest.approx(0.002, rel=1e-12)


def test_the_decay_mask_is_nanogpts_rule():
    tree = {"w": jnp.ones((3, 4)), "emb": jnp.ones((5, 2)), "bias": jnp.ones(4), "gain": jnp.ones(())}
    assert decay_mask(tree) == {"w": True, "emb": True, "bias": False, "gain": False}


def test_adamw_decays_the_matrices_and_not_the_rest():
    """With a zero gradient Adam's own step is 0, so what moves is the decoupled decay: -lr * wd * p on
    the matrices, nothing on vectors."""
    cfg = TrainConfig(lr=0.1, weight_decay=0.5, min_lr=0.1)
    params = {"w": jnp.full((2, 3), 2.0), "b": jnp.full(3, 2.0)}
    opt = make_optimizer(cfg, 10, {k: v.shape for k, v in params.items()}, flat=False)
    updates, _ = jax.jit(opt.update)(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 2.0, rtol=1e-7)  # the rate is a float32 0.1
    np.testing.assert_array_equal(updates["b"], 0.0)
    with pytest.raises(NotImplementedError):  # a flat vector cannot tell a bias from a matrix
        make_optimizer(cfg, 10, {k: v.shape for k, v in params.items()}, flat=True)


def test_clipped_adamw_equals_a_hand_written_one():
    """Three steps of make_optimizer (clip 1.0, AdamW, warm-up + cosine) against numpy: the gradient clipped
    to global norm 1 first, then Adam's moments with bias correction, then the decay, at the step's rate."""
    cfg = dataclasses.replace(SHAKESPEARE, warmup=1, steps=4)
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 2), "b": (4, 4)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    opt = make_optimizer(cfg, 4, shapes, flat=False)
    state, theirs, update = opt.init(params), dict(params), jax.jit(opt.update)
    mine = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros(s) for k, s in shapes.items()}
    v = {k: np.zeros(s) for k, s in shapes.items()}
    for t in range(3):
        grads = {k: rng.normal(size=s) * 3 for k, s in shapes.items()}  # global norm about 12: clipped
        updates, state = update(grads, state, theirs)
        theirs = {k: theirs[k] + updates[k] for k in shapes}
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        lr = nanogpt_lr(t, warmup=1, decay_iters=4)
        for k in shapes:
            g = grads[k] * min(1.0, 1.0 / norm)
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.99 * v[k] + 0.01 * g * g
            step = (m[k] / (1 - 0.9 ** (t + 1))) / (np.sqrt(v[k] / (1 - 0.99 ** (t + 1))) + 1e-8)
            mine[k] = mine[k] - lr * (step + 0.1 * mine[k])
    for k in shapes:
        np.testing.assert_allclose(theirs[k], mine[k], rtol=1e-8)  # optax keeps each step's rate in float32


MODEL = gpt.GPTConfig(vocab_size=11, n_embd=8, n_head=2, n_layer=2, block_size=6)


def logits(**dropout):
    """The tiny model's logits for one row, jitted, with the dropout arguments given."""
    params = gpt.init(jax.random.PRNGKey(0), MODEL, jnp.float64)
    apply = jax.jit(gpt.apply, static_argnames=("config", "dropout_rate"))
    return np.asarray(apply(params, jnp.arange(6) % 11, MODEL, **dropout))


@pytest.mark.slow
def test_dropout_off_is_the_model_without_it():
    plain = logits()
    np.testing.assert_array_equal(logits(dropout_rate=0.0, key=jax.random.PRNGKey(1)), plain)
    np.testing.assert_array_equal(logits(dropout_rate=0.5), plain)  # no key: no dropout


@pytest.mark.slow  # dropout's random bits take XLA seconds to compile
def test_dropout_on_changes_the_logits_and_is_fixed_by_its_key():
    dropped = logits(dropout_rate=0.5, key=jax.random.PRNGKey(1))
    assert not np.allclose(dropped, logits())
    np.testing.assert_array_equal(dropped, logits(dropout_rate=0.5, key=jax.random.PRNGKey(1)))


def test_dropout_keeps_one_minus_rate_and_rescales():
    x = jnp.ones((200, 500))
    y = np.asarray(gpt.dropout(x, 0.2, jax.random.PRNGKey(0)))
    kept = y != 0
    assert abs(kept.mean() - 0.8) < 0.005
    np.testing.assert_allclose(y[kept], 1 / 0.8, rtol=1e-12)


@pytest.mark.slow
def test_dropout_gradient_takes_the_plain_attention_path():
    """Training differentiates the fast path (fast=True); with dropout it must equal autodiff of the plain one."""
    params = gpt.init(jax.random.PRNGKey(0), MODEL, jnp.float64)
    rows = (jnp.arange(14).reshape(2, 7) * 3) % 11
    batch = text_batch(rows, jnp.float64)
    key = jax.random.PRNGKey(5)
    fast = jax.jit(jax.grad(lambda p: packed_loss(p, batch, MODEL, jnp.float64, 0.3, key)))(params)

    def plain(p):
        nll = gpt.token_nll(p, rows[:, :-1], rows[:, 1:], MODEL, dropout_rate=0.3, key=key)
        return jnp.mean(nll)

    for k, g in jax.jit(jax.grad(plain))(params).items():
        np.testing.assert_allclose(fast[k], g, rtol=1e-10, atol=1e-14)


def text_run(**overrides):
    text = "".join(np.random.default_rng(0).choice(list("abcdefgh \n"), size=3000))
    cfg = TrainConfig(**{**presets.settings("shakespeare-char-cpu"), "n_layer": 1, "n_embd": 8, "n_head": 2,
                         "block_size": 8, "steps": 3, "warmup": 1, "dtype": "float64", "eval_every": 0, **overrides})
    return runs.prepare(cfg, text)


@pytest.mark.slow
def test_accumulating_four_batches_is_one_step_on_all_of_them():
    """--accum 4 --batch-size 3 against --batch-size 12: the same 12 windows (one key draws both shapes
    alike), the same loss and update to 1e-12, float64."""
    out = {}
    for accum, batch in ((4, 3), (1, 12)):
        run, state = text_run(accum=accum, batch_size=batch)
        ids, _ = runs.chunk_inputs(run, state.key, 0, 1)
        state, losses = steps.make_train_chunk(run)(state, *run.data, ids)
        out[accum] = (jax.device_get(state.params), float(losses[0]))
    (p4, l4), (p1, l1) = out[4], out[1]
    assert l4 == pytest.approx(l1, rel=1e-12)
    for k in p1:
        np.testing.assert_allclose(p4[k], p1[k], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_accumulate_is_the_mean_of_the_batches():
    params = gpt.init(jax.random.PRNGKey(0), MODEL, jnp.float64)
    rows = (jnp.arange(4 * 2 * 7).reshape(4, 2, 7) * 7) % 11
    loss_fn = lambda p, r: packed_loss(p, text_batch(r, jnp.float64), MODEL, jnp.float64)  # noqa: E731
    loss, grads = jax.jit(lambda p: steps.accumulate(jax.value_and_grad(loss_fn), p, rows))(params)
    whole, whole_grads = jax.jit(jax.value_and_grad(loss_fn))(params, rows.reshape(8, 7))
    assert float(loss) == pytest.approx(float(whole), rel=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], whole_grads[k], rtol=1e-11, atol=1e-15)
