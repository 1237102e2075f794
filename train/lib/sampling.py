"""Sampling names from a trained GPT with the KV-cache decoder, and the lesson's probe of one context."""

import random
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from models import gpt

from .compiled import cached_jit
from .errors import UserError


def sample_python(params, config, tokenizer, rng, num_samples, temperature):
    """microgpt's sampler: from BOS, softmax(logits / temperature), one `rng.choices` draw per token,
    until BOS or block_size tokens. Uses and advances the Python `random.Random` it is given.

    Every draw of `rng.choices` takes one `rng.random()` (u) and picks the first token whose running
    sum of probabilities exceeds u times their total: so the uniforms are drawn here, as many as the
    samples could need, and one compiled scan makes every draw with that same arithmetic
    (`_token_drawer`); the generator is then left as the draws actually made would leave it. Python
    sums the probabilities in float64 whatever their dtype, so other dtypes take `sample_python_loop`.
    """
    if params["wte"].dtype != np.float64:
        return sample_python_loop(params, config, tokenizer, rng, num_samples, temperature)
    state = rng.getstate()
    uniforms = np.array([rng.random() for _ in range(num_samples * config.block_size)])
    drawn = np.asarray(_token_drawer(config, tokenizer.bos)(params, uniforms, np.asarray(temperature, uniforms.dtype)))
    names, out, used = [], [], 0
    for token in drawn.tolist():
        used += 1
        if token != tokenizer.bos:
            out.append(token)
        if token == tokenizer.bos or len(out) == config.block_size:
            names.append(tokenizer.decode(out))
            out = []
            if len(names) == num_samples:
                break
    rng.setstate(state)
    for _ in range(used):
        rng.random()
    return names


def prepare_sample_python(config, tokenizer, dtype, num_samples):
    """Compile (or load) what `sample_python` will run for these settings, ahead of it: the main job
    does it on another thread while the model trains, so that a cold start compiles both at once."""
    if np.dtype(dtype) == np.float64:
        params = {k: jax.ShapeDtypeStruct(s, dtype) for k, s in gpt.param_shapes(config).items()}
        uniforms = jax.ShapeDtypeStruct((num_samples * config.block_size,), np.float64)
        _token_drawer(config, tokenizer.bos).prepare(params, uniforms, jax.ShapeDtypeStruct((), np.float64))


def sample_python_loop(params, config, tokenizer, rng, num_samples, temperature):
    """`sample_python` as microgpt writes it: one dispatch and one `rng.choices` per token."""
    names = []
    for _ in range(num_samples):
        cache, token, out = gpt.init_cache(config, params["wte"].dtype), tokenizer.bos, []
        for pos in range(config.block_size):
            probs, cache = _next_probs(params, cache, token, pos, temperature, config)
            token = rng.choices(range(config.vocab_size), weights=np.asarray(probs).tolist())[0]
            if token == tokenizer.bos:
                break
            out.append(token)
        names.append(tokenizer.decode(out))
    return names


@partial(jax.jit, static_argnames="config")
def _next_probs(params, cache, token, pos, temperature, config):
    logits, cache = gpt.decode_step(params, cache, token, pos, config)
    return jax.nn.softmax(logits / temperature), cache


@lru_cache(maxsize=8)
def _token_drawer(config, bos):
    """f(params, uniforms (D,), temperature) -> the D tokens drawn, one a uniform, as microgpt's loop
    draws them: each sample from BOS until it draws BOS or has block_size tokens, the next one after it."""

    def draw_tokens(params, uniforms, temperature):
        def step(carry, u):
            cache, token, pos = carry
            logits, cache = gpt.decode_step(params, cache, token, pos, config)
            probs = jax.nn.softmax(logits / temperature)
            # random.choices: itertools.accumulate's running sum, left to right, then bisect_right over
            # all but the last; a scan keeps that order of additions (a cumsum need not), and unrolled
            # it would only add compile time
            _, running = jax.lax.scan(lambda c, p: (c + p, c + p), jnp.zeros((), probs.dtype), probs)
            nxt = jnp.sum(running[:-1] <= u * running[-1]).astype(jnp.int32)
            # a new sample keeps the cache: it writes each position before it attends to it, and
            # attends to none after its own
            done = (nxt == bos) | (pos + 1 == config.block_size)
            return (cache, jnp.where(done, bos, nxt), jnp.where(done, 0, pos + 1)), nxt

        start = (gpt.init_cache(config, params["wte"].dtype), jnp.int32(bos), jnp.int32(0))
        return jax.lax.scan(step, start, uniforms)[1]

    return cached_jit(draw_tokens, (config, bos))


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
