"""Text from a trained text model, streamed a character at a time, as nanoGPT's `generate` draws it.

The context is the prompt and everything drawn so far, cropped to its last block_size tokens when it
grows longer (nanoGPT's `idx[:, -block_size:]`). While the sequence fits, the KV cache serves
(`gpt.decode_step`, one position a call); once it does not, every token runs the model over the cropped
window, since positions are absolute: a window that moves by one puts every token at a new position,
so no cached key or value is still right.
"""

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from models import gpt

from .errors import UserError


def stream(params, config, tokenizer, key, prompt, max_new_tokens, temperature, top_k=None):
    """Yield each of max_new_tokens characters (str) as it is drawn after `prompt`.

    An empty prompt starts from "\\n", as nanoGPT's sample.py does (from the first character where the
    vocabulary has no "\\n"). Token i is drawn from softmax(logits / temperature), only the top_k
    likeliest where given, by `jax.random.categorical` with key fold_in(key, i). Not itself a
    generator, so that a prompt outside the vocabulary is a UserError at the call, before any work.
    """
    context = tokenizer.encode(prompt or ("\n" if "\n" in tokenizer.chars else tokenizer.chars[0]))
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k must be 1 or more, got {top_k}")
    top_k = config.vocab_size if top_k is None else min(top_k, config.vocab_size)  # nanoGPT's min(top_k, V)
    return _draw(params, config, tokenizer, key, context[-config.block_size :], max_new_tokens,
                 float(temperature), top_k)


def _draw(params, config, tokenizer, key, context, max_new_tokens, temperature, top_k):
    fill, cached, windowed = _steps(config)
    cache = gpt.init_cache(config, params["wte"].dtype)
    for pos, token in enumerate(context[:-1]):  # the prompt into the cache; its last token is fed below
        cache = fill(params, cache, token, pos)
    sequence = list(context)
    for i in range(max_new_tokens):
        if len(sequence) <= config.block_size:
            token, cache = cached(params, cache, sequence[-1], len(sequence) - 1, temperature, key, i, top_k)
        else:
            window = np.asarray(sequence[-config.block_size :], np.int32)
            token = windowed(params, window, temperature, key, i, top_k)
        sequence.append(int(token))  # waits for the draw: the next step needs it anyway
        yield tokenizer.decode(sequence[-1:])


def choose(logits, temperature, key, i, top_k):
    """nanoGPT's draw: logits / temperature, those below the top_k-th set to -inf (ties with it kept),
    one categorical sample with fold_in(key, i). top_k is a traced number, 1 to V (V: keep all), so
    that one trace serves every k. Low-precision logits are drawn from in float32."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32)) / temperature
    kth = jnp.sort(logits)[logits.shape[-1] - top_k]
    return jax.random.categorical(jax.random.fold_in(key, i), jnp.where(logits < kth, -jnp.inf, logits))


@lru_cache(maxsize=8)
def _steps(config):
    """The jitted pieces for one config, each of fixed shapes so that it traces once: the prompt into the
    cache, a draw from the cache, a draw from a full window. The cache is donated: each step replaces
    it, so XLA may write the new one over the old in place."""

    @partial(jax.jit, donate_argnums=1)
    def fill(params, cache, token, pos):
        return gpt.decode_step(params, cache, token, pos, config)[1]

    @partial(jax.jit, donate_argnums=1)
    def cached(params, cache, token, pos, temperature, key, i, top_k):
        logits, cache = gpt.decode_step(params, cache, token, pos, config)
        return choose(logits, temperature, key, i, top_k), cache

    @jax.jit
    def windowed(params, window, temperature, key, i, top_k):
        return choose(gpt.apply(params, window, config)[-1], temperature, key, i, top_k)  # (T, V) -> (V,)

    return fill, cached, windowed
