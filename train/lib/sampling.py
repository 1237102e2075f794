"""Sampling names from a trained GPT with the KV-cache decoder, and the lesson's probe of one context."""

import random
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from models import gpt

from .errors import UserError


@partial(jax.jit, static_argnames="config")
def _next_probs(params, cache, token, pos, temperature, config):
    logits, cache = gpt.decode_step(params, cache, token, pos, config)
    return jax.nn.softmax(logits / temperature), cache


def sample_python(params, config, tokenizer, rng, num_samples, temperature):
    """microgpt's sampler: from BOS, softmax(logits / temperature), one `rng.choices` draw per token,
    until BOS or block_size tokens. Uses and advances the Python `random.Random` it is given."""
    dtype = params["wte"].dtype
    names = []
    for _ in range(num_samples):
        cache, token, out = gpt.init_cache(config, dtype), tokenizer.bos, []
        for pos in range(config.block_size):
            probs, cache = _next_probs(params, cache, token, pos, temperature, config)
            token = rng.choices(range(config.vocab_size), weights=np.asarray(probs).tolist())[0]
            if token == tokenizer.bos:
                break
            out.append(token)
        names.append(tokenizer.decode(out))
    return names


@lru_cache(maxsize=8)
def make_sampler(config, num_samples, temperature):
    """A jitted f(params, key, prompt, prompt_len) -> tokens (num_samples, block_size).

    Every sample starts from BOS followed by the prompt's tokens (forced), then draws from
    softmax(logits / temperature) with its own key; `lax.scan` over positions, `vmap` over samples.
    Cached, so that drawing again with the same settings does not trace and compile again.
    """

    def one(params, key, prompt, prompt_len):
        cache = gpt.init_cache(config, params["wte"].dtype)

        def step(carry, pos):
            cache, token = carry
            logits, cache = gpt.decode_step(params, cache, token, pos, config)
            drawn = jax.random.categorical(jax.random.fold_in(key, pos), logits / temperature)
            forced = prompt[jnp.minimum(pos + 1, config.block_size - 1)]
            nxt = jnp.where(pos + 1 < prompt_len, forced, drawn).astype(prompt.dtype)
            return (cache, nxt), nxt

        _, tokens = jax.lax.scan(step, (cache, prompt[0]), jnp.arange(config.block_size))
        return tokens

    def sample(params, key, prompt, prompt_len):
        keys = jax.random.split(key, num_samples)
        return jax.vmap(one, in_axes=(None, 0, None, None))(params, keys, prompt, prompt_len)

    return jax.jit(sample)


def sample_jax(params, config, tokenizer, key, num_samples, temperature, prompt=""):
    """Names drawn with JAX keys, each beginning with `prompt`."""
    ids = [tokenizer.bos] + tokenizer.encode(prompt)
    if len(ids) > config.block_size:
        raise UserError(f"prompt {prompt!r} is longer than the model's context ({config.block_size - 1} characters)")
    padded = np.full(config.block_size, tokenizer.bos, np.int32)
    padded[: len(ids)] = ids
    tokens = np.asarray(make_sampler(config, num_samples, temperature)(params, key, padded, len(ids)))
    names = []
    for row in tokens:
        out = list(ids[1:])
        for t in row[len(ids) - 1 :]:
            if t == tokenizer.bos:
                break
            out.append(int(t))
        names.append(tokenizer.decode(out))
    return names


def probe(params, config, tokenizer, context, top=5):
    """The model's next-token distribution after BOS + context: [(char or '<BOS>', probability)], the
    `top` most likely first (every token with top=None)."""
    ids = jnp.asarray([tokenizer.bos] + tokenizer.encode(context)[-(config.block_size - 1) :])
    probs = np.asarray(jax.nn.softmax(gpt.apply(params, ids, config)[-1].astype(jnp.float32)))
    order = np.argsort(-probs)[:top]
    return [(tokenizer.chars[i] if i != tokenizer.bos else "<BOS>", float(probs[i])) for i in order]


def python_rng(state):
    """A `random.Random` in the state `getstate()` gave (a Run keeps microgpt's generator this way)."""
    rng = random.Random()
    rng.setstate(state)
    return rng
