"""What the speed work changes must not change the numbers: the fast paths against the plain ones, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import gpt
from train.lib import batches, devices, run as runs, step
from train.lib.config import TrainConfig
from train.lib.data import load_docs


@pytest.mark.slow
def test_length_buckets_train_exactly_like_full_rows(names):
    """A long run cuts each one-document step to the shortest bucket that holds the document; the
    losses and parameters after 40 steps equal those of full rows to 1e-12 (summation order only)."""
    cfg = TrainConfig(n_embd=8, n_head=2, steps=40, chunk=40)
    out = {}
    for long_run in (False, True):
        run, state = runs.prepare(cfg, load_docs(names))
        idx = runs.batch_indices(run, state.key, 0, 40)
        chunk = step.make_train_chunk(run, long_run=long_run)
        state, losses = chunk(state, *run.data, runs.step_ids(run, idx))
        out[long_run] = devices.to_host((state.params, losses))
    lengths = run.lengths[idx.ravel()]
    assert batches.length_buckets(16) == (8, 16)
    assert (lengths <= 8).any() and (lengths > 8).any()  # both buckets are taken
    for short, full in zip(jax.tree.leaves(out[True]), jax.tree.leaves(out[False])):
        np.testing.assert_allclose(short, full, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_attention_backward_by_hand_equals_autodiff_of_the_plain_forward():
    """models/gpt.py `_mix_fast` has a hand-derived backward; it equals jax's autodiff of the same forward
    (`_mix`) in float64 to 1e-12, with a causal mask split into two segments as packed rows have,
    for the output and for the weights it also returns."""
    B, T, H, D = 3, 16, 4, 4
    q, k, v, g = (jax.random.normal(jax.random.PRNGKey(i), (B, T, H, D), jnp.float64) for i in range(4))
    g_w = jax.random.normal(jax.random.PRNGKey(4), (B, H, T, T), jnp.float64)
    segments = (jnp.arange(T) >= jnp.array([5, 9, 16])[:, None]).astype(int)  # the last row is one segment
    mask = jnp.tril(jnp.ones((T, T), bool)) & (segments[:, :, None] == segments[:, None, :])
    sqrt_d = np.sqrt(D)
    out, by_hand = jax.vjp(lambda q, k, v: gpt._mix_fast(q, k, v, mask, sqrt_d), q, k, v)
    ref_out, autodiff = jax.vjp(lambda q, k, v: gpt._mix(q, k, v, mask, sqrt_d), q, k, v)
    for mine, ref in zip(out, ref_out):
        np.testing.assert_array_equal(mine, ref)
    for cotangent in ((g, jnp.zeros_like(g_w)), (g, g_w)):
        for mine, ref in zip(by_hand(cotangent), autodiff(cotangent)):
            assert float(jnp.max(jnp.abs(ref))) > 0.1  # a real gradient, not zeros on both sides
            np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-12)
