"""The loss curve as a PNG, and the matplotlib set-up every picture shares (drawn off-screen)."""

from .cli import UserError

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
