"""Pictures a learner would rather look at than read: attention weights, the next-character
distribution before and after training, and loss curves. Drawn off-screen with matplotlib."""

import jax.numpy as jnp
import numpy as np

from models import gpt

from .errors import UserError

BOS_LABEL = "BOS"
DPI = 120  # a picture's size in pixels is its figsize in inches times this


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    """Write the figure (format from the suffix) and close it; an unwritable path is a one-line error."""
    try:
        fig.savefig(path, dpi=DPI)
    except OSError as e:
        raise UserError(f"cannot write the picture to {path}: {e.strerror}") from None
    finally:
        pyplot().close(fig)
    return path


def attention(params, config, tokenizer, text):
    """(labels, weights) for the input BOS + text: weights (n_layer, n_head, T, T), queries x keys.

    They come out of `models.gpt.apply(..., return_attention=True)`, the same softmax the logits are
    computed from, so the picture shows what the model does rather than a second copy of attention.
    """
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


def plot_losses(rows, path):
    plt = pyplot()
    steps = [r["step"] for r in rows if "loss" in r]
    losses = [r["loss"] for r in rows if "loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, lw=0.6, alpha=0.5, label="train (per step)")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                  for i in range(len(losses))]
        ax.plot(steps, smooth, lw=1.5, label=f"train (mean of {window})")
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if val:
        ax.plot(*zip(*val), "o-", lw=1.5, label="held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def compare_losses(histories, reference, path, window=10):
    """Runs that should train alike, told apart: above, each run's training loss as a running mean of
    `window` steps, in its own colour, line style and markers (per-step losses of close runs draw one
    line); below, each run's per-step loss minus the `reference` run's, where 0 means bit for bit.
    `histories`: {label: metrics rows}."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(2, 1),
                                      layout="constrained")
    styles = [dict(ls="-", lw=2.5, alpha=0.6), dict(ls="none", marker="o", ms=4, mfc="none"),
              dict(ls="--", lw=1.2), dict(ls=":", lw=1.5)]
    ref = dict(_losses(histories[reference]))
    for i, (label, rows) in enumerate(histories.items()):
        steps, losses = map(np.asarray, zip(*_losses(rows)))
        mean = np.convolve(losses, np.ones(window) / window, mode="valid")
        style = styles[i % len(styles)]
        if style.get("marker"):
            style = {**style, "markevery": max(1, len(mean) // 20)}
        top.plot(steps[window - 1 :], mean, color=f"C{i}", label=label, **style)
        if label != reference:
            bottom.plot(steps, losses - np.array([ref[s] for s in steps]), color=f"C{i}", lw=1,
                        label=f"{label} - {reference}", **({"marker": "o", "ms": 2, "ls": "none"}
                                                          if style.get("marker") else {}))
    top.set(ylabel=f"training loss (mean of {window})")
    top.legend()
    bottom.axhline(0, color="0.5", lw=0.6)
    bottom.set(xlabel="step", ylabel="difference")
    bottom.legend(fontsize=8)
    return save(fig, path)


def _losses(rows):
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]
