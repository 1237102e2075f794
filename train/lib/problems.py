"""The problems `train.check` checks: one loss written twice, on microjax's scalars and in JAX, over the
same named parameters (a `gradcheck.Problem`): microgpt's GPT at its first step, and the lesson's MLP."""

import microjax as mj

from .config import TrainConfig
from .data import encode_docs, microgpt_order
from .gradcheck import Problem
from .lesson import SIZES, XS, YS


def gpt_problem(docs, seed=42, doc=None, **model):
    """microgpt's first step: `seed` shuffles the documents and draws the weights as microgpt.py does;
    the document is the first after shuffling (step 1), or `doc`. `model`: TrainConfig's model fields."""
    import jax.numpy as jnp

    from models import gpt, gpt_scalar

    rng, docs, tok = microgpt_order(docs, seed)
    config = TrainConfig(seed=seed, **model).model(tok.vocab_size)
    params = gpt_scalar.init(rng, config)
    doc = docs[0] if doc is None else doc
    rows, n, _ = encode_docs([doc], tok, config.block_size)
    tokens, targets = rows[0, :n[0]].tolist(), rows[0, 1 : n[0] + 1].tolist()
    size = (f"{config.n_layer} layer{'s' * (config.n_layer > 1)}, n_embd {config.n_embd}, {config.n_head} heads, "
            f"{gpt.num_params(config):,} parameters")
    return Problem(f"GPT ({size}), the loss of {doc!r} over {len(tokens)} positions", params,
                   lambda p: gpt_scalar.loss(p, tokens, targets, config),
                   lambda p: gpt.loss(p, jnp.asarray(tokens), jnp.asarray(targets), jnp.ones(len(tokens)), config))


def mlp_problem(seed=0):
    """The lesson's 3-4-4-1 tanh MLP (train.mlp's initial weights for `seed`) and its four examples."""
    from models import mlp as jmlp

    layers = mj.init_mlp(len(XS[0]), SIZES, seed=seed)
    params = {f"layer{i}.{k}": layer[k] for i, layer in enumerate(layers) for k in ("w", "b")}

    def tree(p):  # {"layer0.w": ..} -> [{"w": .., "b": ..}, ..], the structure both models take
        return [{k: p[f"layer{i}.{k}"] for k in ("w", "b")} for i in range(len(layers))]

    def jax_loss(p):
        import jax.numpy as jnp

        return jmlp.squared_error(tree(p), jnp.asarray(XS), jnp.asarray(YS))

    return Problem(f"MLP 3-{'-'.join(map(str, SIZES))}, squared error on the 4 examples", params,
                   lambda p: mj.squared_error(tree(p), XS, YS), jax_loss)
