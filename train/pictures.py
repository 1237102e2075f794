"""Pictures a learner would rather look at than read: attention weights, and the next-character
distribution before and after training (the loss curve is in plot.py)."""

import numpy as np

from .cli import UserError
from .plot import pyplot, save

BOS_LABEL = "BOS"


def attention(params, config, tokenizer, text):
    """(labels, weights) for the input BOS + text: weights (n_layer, n_head, T, T), queries x keys.

    They come out of `models.gpt.apply(..., return_attention=True)`, the same softmax the logits are
    computed from, so the picture shows what the model does rather than a second copy of attention.
    """
    import jax.numpy as jnp

    from models import gpt

    ids = [tokenizer.bos] + tokenizer.encode(text)
    if len(ids) > config.block_size:
        raise UserError(f"text {text!r} is longer than the model's context ({config.block_size - 1} characters)")
    _, weights = gpt.apply(params, jnp.asarray(ids), config, return_attention=True)
    return [BOS_LABEL] + list(text), np.asarray(weights, np.float64)


def plot_attention(labels, weights, path, title=None):
    """One heat map per layer (rows) and head (columns): row t is query t's weights over keys 0..t."""
    plt = pyplot()
    n_layer, n_head, T, _ = weights.shape
    fig, axes = plt.subplots(n_layer, n_head, figsize=(1.2 + 2.0 * n_head, 0.8 + 2.0 * n_layer), squeeze=False,
                             layout="constrained")
    for (layer, head), ax in np.ndenumerate(axes):
        image = ax.imshow(weights[layer, head], vmin=0.0, vmax=1.0, cmap="Blues")
        ax.set_xticks(range(T), labels, fontsize=7)
        ax.set_yticks(range(T), labels, fontsize=7)
        ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        if head == 0:
            ax.set_ylabel("query")
        if layer == n_layer - 1:
            ax.set_xlabel("key")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)


def plot_probe(context, before, after, path):
    """Bars of the next-character distribution after `context`, before and after training.

    `before` and `after` are [(character or '<BOS>', probability)] over the whole vocabulary, as
    `train.sampling.probe(..., top=vocab_size)` returns them.
    """
    plt = pyplot()
    chars = sorted(dict(before), key=lambda c: (c == "<BOS>", c))  # a..z, then the end of the name
    x = np.arange(len(chars))
    fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
    for shift, dist, label, color in ((-0.2, before, "before training", "0.65"), (0.2, after, "after training", "C0")):
        probs = dict(dist)
        ax.bar(x + shift, [probs[c] for c in chars], 0.4, label=label, color=color)
    ax.axhline(1 / len(chars), color="0.3", lw=0.8, ls=":", label=f"uniform (1/{len(chars)})")
    ax.set_xticks(x, [BOS_LABEL if c == "<BOS>" else c for c in chars])
    ax.set_ylabel("probability")
    ax.set_title(f"next character after {context!r} (BOS: the name ends)")
    ax.legend()
    return save(fig, path)
