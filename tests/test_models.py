"""Each JAX model held equal to its scalar twin on microjax, and the GPT's own properties."""

import random

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import microjax as mj
from models import gpt, gpt_scalar
from models import mlp as jmlp

from .helpers import tree_allclose

CONFIGS = [  # (vocab, n_embd, n_head, n_layer, block_size)
    gpt.GPTConfig(7, 8, 1, 1, 6),
    gpt.GPTConfig(7, 8, 2, 2, 6),
    gpt.GPTConfig(11, 12, 4, 1, 8),
]


apply = jax.jit(gpt.apply, static_argnums=2)
loss_and_grad = jax.jit(jax.value_and_grad(gpt.loss), static_argnums=4)


def random_case(config, seed, length):
    key = jax.random.PRNGKey(seed)
    params = gpt.init(key, config, jnp.float64)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, config.vocab_size, size=length + 1)
    return params, tokens[:-1], tokens[1:]


def as_lists(params):
    return {k: np.asarray(v).tolist() for k, v in params.items()}


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_scalar_twin_gives_the_same_logits(config):
    for seed in range(3):
        params, tokens, _ = random_case(config, seed, config.block_size)
        twin = np.array(gpt_scalar.apply(as_lists(params), tokens.tolist(), config))
        np.testing.assert_allclose(twin, apply(params, jnp.asarray(tokens), config), rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_loss_and_gradient_match_between_microjax_and_jax(config):
    params, tokens, targets = random_case(config, 7, config.block_size)
    v, g = mj.value_and_grad(gpt_scalar.loss)(as_lists(params), tokens.tolist(), targets.tolist(), config)
    jv, jg = loss_and_grad(params, jnp.asarray(tokens), jnp.asarray(targets), jnp.ones(len(tokens)), config)
    assert v == pytest.approx(float(jv), rel=1e-9)
    assert set(g) == set(jg)
    for name in g:
        scale = np.max(np.abs(jg[name]))
        np.testing.assert_allclose(g[name], jg[name], rtol=1e-9, atol=1e-9 * scale, err_msg=name)


@pytest.mark.slow
def test_mlp_twins_agree_and_convert_both_ways():
    params = mj.init_mlp(3, (4, 4, 1), seed=5)
    jparams = jmlp.from_microjax(params, jnp.float64)
    assert jmlp.to_microjax(jparams) == params
    xs = [[2.0, 3.0, -1.0], [0.5, 1.0, 1.0]]
    np.testing.assert_allclose([mj.mlp(params, x) for x in xs], jmlp.apply(jparams, jnp.asarray(xs))[:, 0],
                               rtol=1e-12)
    ys = [1.0, -1.0]
    g = mj.grad(mj.squared_error)(params, xs, ys)
    jg = jax.grad(jmlp.squared_error)(jparams, jnp.asarray(xs), jnp.asarray(ys))
    tree_allclose(jmlp.from_microjax(g, jnp.float64), jg, rtol=1e-9, atol=1e-14)
    key_params = jmlp.init(jax.random.PRNGKey(0), [3, 4, 1])
    assert [p["w"].shape for p in key_params] == [(4, 3), (1, 4)]
    assert all(float(jnp.max(jnp.abs(p["w"]))) <= 1.0 for p in key_params)


@pytest.mark.slow
def test_batched_loss_is_the_mean_of_per_document_means():
    config = CONFIGS[1]
    params, tokens, targets = random_case(config, 3, config.block_size)
    lengths = [6, 2, 4]
    mask = np.arange(config.block_size)[None, :] < np.array(lengths)[:, None]
    batch = np.stack([tokens] * 3), np.stack([targets] * 3)
    expected = np.mean([float(jnp.mean(-jax.nn.log_softmax(apply(params, jnp.asarray(tokens[:n]), config))[
        jnp.arange(n), targets[:n]])) for n in lengths])
    got = gpt.loss(params, jnp.asarray(batch[0]), jnp.asarray(batch[1]), jnp.asarray(mask), config)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
def test_kv_cache_decoding_equals_full_apply_at_every_position(dtype, tol):
    config = CONFIGS[1]
    params = gpt.init(jax.random.PRNGKey(1), config, dtype)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, config.vocab_size, config.block_size))
    full = apply(params, tokens, config)
    assert full.dtype == dtype

    def step(cache, xs):
        token, pos = xs
        logits, cache = gpt.decode_step(params, cache, token, pos, config)
        return cache, logits

    _, logits = jax.jit(lambda: jax.lax.scan(step, gpt.init_cache(config, dtype),
                                             (tokens, jnp.arange(config.block_size))))()
    assert logits.dtype == dtype
    np.testing.assert_allclose(logits, full, rtol=tol, atol=tol)


@pytest.mark.slow
def test_causality_later_positions_get_exactly_zero_gradient():
    config = CONFIGS[1]
    params = gpt.init(jax.random.PRNGKey(2), config, jnp.float64)
    tokens = jnp.arange(config.block_size) % config.vocab_size  # distinct tokens: each wte row used once
    targets = jnp.roll(tokens, -1)
    for t in range(config.block_size):
        mask = jnp.arange(config.block_size) == t  # the loss at position t alone
        g = loss_and_grad(params, tokens, targets, mask, config)[1]
        assert np.all(g["wpe"][t + 1 :] == 0.0), t
        assert np.all(g["wte"][np.asarray(tokens[t + 1 :])] == 0.0), t
        assert np.any(g["wpe"][: t + 1] != 0.0)


@pytest.mark.slow
def test_jit_agrees_and_does_not_retrace():
    config = CONFIGS[0]
    params, tokens, targets = random_case(config, 0, config.block_size)

    @chex.assert_max_traces(n=1)  # a second trace raises
    def loss(params, tokens, targets):
        return gpt.loss(params, tokens, targets, jnp.ones(tokens.shape), config)

    jitted = jax.jit(jax.value_and_grad(loss))
    v1, g1 = jitted(params, tokens, targets)
    v2, g2 = jitted(jax.tree.map(lambda p: p * 1.5, params), targets, tokens)  # new values, same shapes
    chex.clear_trace_counter()
    v, g = jax.value_and_grad(loss)(params, tokens, targets)
    assert float(v1) == pytest.approx(float(v), rel=1e-12) and float(v2) != float(v1)
    tree_allclose(g1, g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kwargs, words", [
    ({"n_embd": 10, "n_head": 3}, "divisible"),
    ({"n_layer": 0}, "n_layer"),
    ({"vocab_size": -1}, "vocab_size"),
    ({"block_size": 2.5}, "block_size"),
    ({"n_head": True}, "n_head"),
])
def test_impossible_configs_are_rejected(kwargs, words):
    with pytest.raises(ValueError, match=words):
        gpt.GPTConfig(**kwargs)


@pytest.mark.slow
def test_parameter_names_shapes_and_count():
    config = gpt.GPTConfig()
    params = gpt.init(jax.random.PRNGKey(0), config)
    assert list(params) == ["wte", "wpe", "lm_head", "layer0.attn_wq", "layer0.attn_wk", "layer0.attn_wv",
                            "layer0.attn_wo", "layer0.mlp_fc1", "layer0.mlp_fc2"]
    assert params["layer0.mlp_fc1"].shape == (64, 16) and params["layer0.mlp_fc2"].shape == (16, 64)
    assert sum(p.size for p in params.values()) == gpt.num_params(config) == 4192
    assert gpt.num_params(gpt.GPTConfig(block_size=8)) == 4064
    assert float(jnp.std(jnp.concatenate([p.ravel() for p in params.values()]))) == pytest.approx(0.08, rel=0.05)
    assert gpt_scalar.init(random.Random(0), config)["wte"][0][0] == random.Random(0).gauss(0, 0.08)


@pytest.mark.slow
def test_packed_rows_equal_each_document_alone():
    config = CONFIGS[1]
    params = gpt.init(jax.random.PRNGKey(4), config, jnp.float64)
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, config.vocab_size, 4), rng.integers(0, config.vocab_size, 2)
    row = jnp.asarray(np.concatenate([a, b]))
    logits = gpt.apply(params, row, config, positions=jnp.array([0, 1, 2, 3, 0, 1]),
                       segments=jnp.array([0, 0, 0, 0, 1, 1]))
    np.testing.assert_allclose(logits[:4], apply(params, jnp.asarray(a), config), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(logits[4:], apply(params, jnp.asarray(b), config), rtol=1e-12, atol=1e-13)


# -- the plain model composes with every transform; the fast path equals it -----------------------------
TINY = gpt.GPTConfig(5, 4, 2, 1, 4)  # 248 parameters: a Hessian of 248 x 248


def tiny_loss_case(seed=0):
    params = gpt.init(jax.random.PRNGKey(seed), TINY, jnp.float64)
    rng = np.random.default_rng(seed)
    tokens = jnp.asarray(rng.integers(0, TINY.vocab_size, (2, TINY.block_size)))
    targets = jnp.asarray(rng.integers(0, TINY.vocab_size, (2, TINY.block_size)))
    mask = jnp.asarray(np.arange(TINY.block_size)[None, :] < np.array([[4], [2]]))
    direction = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
    return params, jax.jit(lambda p: gpt.loss(p, tokens, targets, mask, TINY)), direction


def dot(a, b):
    return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow
def test_jvp_of_the_loss_is_the_gradient_along_the_direction():
    params, loss, v = tiny_loss_case()
    value, tangent = jax.jit(lambda p, v: jax.jvp(loss, (p,), (v,)))(params, v)
    assert float(value) == pytest.approx(float(loss(params)), rel=1e-14)
    assert float(tangent) == pytest.approx(dot(jax.jit(jax.grad(loss))(params), v), rel=1e-12)
    h = 1e-6  # and against a central difference: O(h^2) truncation, O(1e-16 / h) rounding
    shifted = [float(loss(jax.tree.map(lambda p, d: p + s * h * d, params, v))) for s in (1, -1)]
    assert float(tangent) == pytest.approx((shifted[0] - shifted[1]) / (2 * h), rel=1e-7)


@pytest.mark.slow
def test_jacfwd_of_the_loss_equals_jax_grad():
    params, loss, _ = tiny_loss_case(1)
    tree_allclose(jax.jit(jax.jacfwd(loss))(params), jax.jit(jax.grad(loss))(params), rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_hessian_of_the_loss_is_symmetric_and_its_products_match_forward_over_reverse():
    params, loss, v = tiny_loss_case(2)
    hessian = jax.jit(jax.hessian(loss))(params)  # {name: {name: (shape + shape)}}
    flat_params, unravel = jax.flatten_util.ravel_pytree(params)
    n = flat_params.size
    H = np.concatenate([np.concatenate([np.asarray(hessian[a][b]).reshape(params[a].size, params[b].size)
                                        for b in sorted(params)], axis=1) for a in sorted(params)])
    assert H.shape == (n, n) == (248, 248)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12)
    hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])(params, v)
    np.testing.assert_allclose(H @ jax.flatten_util.ravel_pytree(v)[0], jax.flatten_util.ravel_pytree(hvp)[0],
                               rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(H)) > 0.1  # a real curvature, not zeros on both sides


@pytest.mark.slow
def test_fast_path_equals_the_plain_model_in_value_and_gradient_on_packed_rows():
    """fast=True swaps in the hand-written backward passes (models/gpt.py, "Speed"): the same loss and
    gradient as autodiff of the plain model, in float64 to 1e-12, on rows packed with two documents."""
    config = CONFIGS[1]
    params = gpt.init(jax.random.PRNGKey(5), config, jnp.float64)
    rng = np.random.default_rng(5)
    tokens, targets = (jnp.asarray(rng.integers(0, config.vocab_size, (3, 6))) for _ in range(2))
    positions = jnp.asarray([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 1, 0, 1, 2, 0]])
    segments = jnp.asarray([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 2]])
    weights = jnp.asarray(rng.uniform(0.1, 1.0, (3, 6)))

    def loss(p, fast):
        return jnp.sum(weights * gpt.token_nll(p, tokens, targets, config, positions, segments, fast=fast))

    (plain, g_plain), (fast, g_fast) = (jax.jit(jax.value_and_grad(loss), static_argnums=1)(params, f)
                                        for f in (False, True))
    assert float(fast) == pytest.approx(float(plain), rel=1e-13)
    tree_allclose(g_fast, g_plain, rtol=1e-12, atol=1e-14)
    with pytest.raises(TypeError, match="custom_vjp"):  # why the plain path is the default
        jax.jvp(lambda p: loss(p, True), (params,), (params,))
