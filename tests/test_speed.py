"""What the speed work changes must not change the numbers: the fast paths against the plain ones, in float64."""

import jax
import numpy as np
import pytest

from train import batches, devices, trainer
from train.data import load_docs


@pytest.mark.slow
def test_length_buckets_train_exactly_like_full_rows(names):
    """A long run cuts each one-document step to the shortest bucket that holds the document; the
    losses and parameters after 40 steps equal those of full rows to 1e-12 (summation order only)."""
    cfg = trainer.TrainConfig(n_embd=8, n_head=2, steps=40, chunk=40)
    out = {}
    for long_run in (False, True):
        run = trainer.prepare(cfg, load_docs(names))
        idx = trainer.batch_indices(run, 0, 40)
        chunk = trainer.make_train_chunk(run, long_run=long_run)
        params, _, losses = chunk(run.params, run.opt_state, *run.data, trainer.step_ids(run, idx))
        out[long_run] = devices.to_host((params, losses))
    lengths = run.lengths[idx.ravel()]
    assert batches.length_buckets(16) == (8, 16)
    assert (lengths <= 8).any() and (lengths > 8).any()  # both buckets are taken
    for short, full in zip(jax.tree.leaves(out[True]), jax.tree.leaves(out[False])):
        np.testing.assert_allclose(short, full, rtol=1e-12, atol=1e-15)

