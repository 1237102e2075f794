"""The optimizer a TrainConfig asks for, built from optax's parts: the learning-rate schedule (linear or
cosine decay, after an optional linear warm-up as nanoGPT's `get_lr`), Adam or AdamW with nanoGPT's
decay rule, and global-norm clipping before it. microgpt's preset is plain Adam with a linear decay to
zero, the same optax objects as before these options existed, so its run stays bit-exact.
"""

import jax
import optax


def learning_rate(cfg, total):
    """optax schedule over `total` steps. Warm-up: lr * (t + 1) / (warmup + 1) at step t < warmup, as
    nanoGPT's; then a decay from lr at step `warmup` to min_lr at step `total`."""
    steps = total - cfg.warmup
    if cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.lr, cfg.min_lr, steps)
    else:
        decay = optax.cosine_decay_schedule(cfg.lr, steps, alpha=cfg.min_lr / cfg.lr)
    if not cfg.warmup:
        return decay
    warm = optax.linear_schedule(cfg.lr / (cfg.warmup + 1), cfg.lr, cfg.warmup)
    return optax.join_schedules([warm, decay], [cfg.warmup])


def decay_mask(params):
    """nanoGPT's weight-decay rule: every matrix (embeddings included) decays; vectors and scalars, such
    as biases and norm gains, do not."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg, total, param_shapes, flat=True):
    """The optax transformation for `cfg` over `total` steps. `flat`: it will update the parameters
    raveled into one vector (train/lib/step.py), where a per-leaf mask cannot apply; every parameter of
    microgpt's GPT is a matrix, so there the mask is all of them."""
    schedule = learning_rate(cfg, total)
    if cfg.weight_decay:
        mask = decay_mask
        if flat:
            shapes = {k: jax.ShapeDtypeStruct(s, "float32") for k, s in param_shapes.items()}
            if not all(jax.tree.leaves(decay_mask(shapes))):
                raise NotImplementedError("weight decay on a flat parameter vector needs every parameter to decay")
            mask = None
        opt = optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=mask)
    else:
        opt = optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt) if cfg.grad_clip else opt
