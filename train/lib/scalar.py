"""microgpt.py's whole training loop on the scalar engine: the twin of the jitted trainer.

microjax gradients of `models.gpt_scalar.loss` and Adam written out number by number, as microgpt.py
writes it. Slow by design (a Python object per multiply); tests and the benchmark hold the jitted
trainer equal to it and measure how much faster the jitted one is.
"""

import microjax as mj
from models import gpt, gpt_scalar

from .data import microgpt_order


def train_microgpt(docs, steps, seed=42, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8, **model):
    """Yield (step, loss, params) for steps 1..`steps`; `model` holds GPTConfig fields but vocab_size."""
    rng, docs, tok = microgpt_order(docs, seed)
    config = gpt.GPTConfig(tok.vocab_size, **model)
    leaves, unflatten = mj.tree_flatten(gpt_scalar.init(rng, config))
    m, v = [0.0] * len(leaves), [0.0] * len(leaves)
    loss_and_grad = mj.value_and_grad(gpt_scalar.loss)
    for step in range(steps):
        tokens = [tok.bos] + tok.encode(docs[step % len(docs)]) + [tok.bos]
        n = min(config.block_size, len(tokens) - 1)
        loss, grads = loss_and_grad(unflatten(leaves), tokens[:n], tokens[1 : n + 1], config)
        lr_t = lr * (1 - step / steps)
        for i, g in enumerate(mj.tree_flatten(grads)[0]):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g**2
            m_hat, v_hat = m[i] / (1 - beta1 ** (step + 1)), v[i] / (1 - beta2 ** (step + 1))
            leaves[i] -= lr_t * m_hat / (v_hat**0.5 + eps)
        yield step + 1, loss, unflatten(leaves)
