"""microgpt's sampler in one compiled scan (`sample_python`) draws exactly what its per-token loop
(`sample_python_loop`, one `random.choices` a token) draws, and leaves the generator where it would."""

import random

import jax
import numpy as np
import pytest

from models import gpt
from train.lib import sampling
from train.lib.data import Tokenizer


@pytest.mark.slow  # two samplers compiled per case
@pytest.mark.parametrize("seed, temperature, n_layer", [(0, 0.5, 1), (1, 1.0, 2), (2, 3.0, 1), (3, 0.05, 1)])
def test_the_scan_draws_what_the_loop_draws(seed, temperature, n_layer):
    tokenizer = Tokenizer("abcdefghijklmnopqrstuvwxyz")
    config = gpt.GPTConfig(tokenizer.vocab_size, 16, 4, n_layer, 8)  # short context: some names fill it
    params = jax.device_get(gpt.init(jax.random.PRNGKey(seed), config, np.float64))
    params["lm_head"] = params["lm_head"] * 20  # peaked distributions as well as flat ones
    fast, loop = random.Random(seed), random.Random(seed)
    names = sampling.sample_python(params, config, tokenizer, fast, 30, temperature)
    assert names == sampling.sample_python_loop(params, config, tokenizer, loop, 30, temperature)
    assert fast.getstate() == loop.getstate()
    assert len(names) == 30
