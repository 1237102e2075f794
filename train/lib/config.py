"""What a training run is asked to do: `TrainConfig`, each setting's default, allowed values and help
in one place. The command line makes its flags from these fields (`train/cli.py`), and a config built
in code is checked against the same ranges and choices.

jax is imported only where a dtype or a model config is asked for, so that flags parse at once.
"""

import dataclasses
import math
from dataclasses import dataclass

from .errors import UserError
from .presets import PRESETS

DTYPES = ("float64", "float32", "bfloat16", "auto")
RNGS = ("python", "jax")
FORMATS = ("lines", "text")
SCHEDULES = ("linear", "cosine")
MAX_STEPS = 10**9
# Below 0.001, logits / temperature overflows to inf and the probabilities to NaN (or, in float32, the
# temperature itself rounds to zero): what is left is argmax, which 0.001 already gives.
MIN_TEMPERATURE = 0.001


@dataclass(frozen=True)
class Range:
    """The values a number may take: an int, or a finite float, within low/high (inclusive) and
    above/below (exclusive)."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None

    def describe(self):
        """'an integer >= 1 and <= 1,000', as the errors say it."""
        bounds = [f"{sign} {bound:,}" for sign, bound in
                  ((">=", self.low), ("<=", self.high), (">", self.above), ("<", self.below)) if bound is not None]
        return f"{'an integer' if self.kind is int else 'a number'} {' and '.join(bounds)}".strip()

    def contains(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind is int and
                                                                                not isinstance(value, int)):
            return False
        return (math.isfinite(value) and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high) and (self.above is None or value > self.above)
                and (self.below is None or value < self.below))


SEED = Range(int, 0, 2**32 - 1)
TEMPERATURE = Range(float, MIN_TEMPERATURE)


def setting(default, help, range=None, choices=None, resume=False):
    """A config field with its help text and allowed values; `resume`: it may change when a run resumes
    (it changes how long a run goes or how it reports, not what it computes)."""
    return dataclasses.field(default=default, metadata={"help": help, "range": range, "choices": choices,
                                                        "resume": resume})


@dataclass(frozen=True)
class TrainConfig:
    """microgpt's preset by default: every default is microgpt.py's constant."""

    n_layer: int = setting(1, "transformer blocks", Range(int, 1, 1024))
    n_embd: int = setting(16, "embedding width", Range(int, 1, 65536))
    n_head: int = setting(4, "attention heads; each sees n_embd / n_head channels", Range(int, 1, 65536))
    block_size: int = setting(16, "context length", Range(int, 1, 4096))
    seed: int = setting(42, "random seed", SEED)
    steps: int = setting(1000, "optimizer steps, over which the learning rate schedule runs",
                         Range(int, 1, MAX_STEPS), resume=True)
    epochs: float | None = setting(None, "train for this many passes over the training documents instead of "
                                         "--steps", Range(float, high=10**6, above=0), resume=True)
    batch_size: int = setting(1, "documents (--format text: windows) per step; microgpt takes one", Range(int, 1, 10**6))
    accum: int = setting(1, "gradient accumulation: each step averages the gradients of this many batches",
                         Range(int, 1, 10**4))
    format: str = setting("lines", "'lines': one document per line, each between BOS tokens; 'text': the file as "
                                   "one stream of characters, trained on random windows of block_size + 1",
                          choices=FORMATS)
    lr: float = setting(0.01, "peak Adam learning rate", Range(float, high=1e30, above=0))  # it must fit in float32
    schedule: str = setting("linear", "after the warm-up the learning rate decays to --min-lr at the last step: "
                                      "in a straight line, or along a half cosine", choices=SCHEDULES)
    warmup: int = setting(0, "warm-up steps: the rate rises linearly to --lr over them, as nanoGPT's",
                          Range(int, 0, MAX_STEPS))
    min_lr: float = setting(0.0, "the learning rate at the last step", Range(float, 0, 1e30))
    weight_decay: float = setting(0.0, "AdamW's decoupled weight decay on every matrix (nanoGPT's rule); 0: Adam",
                                  Range(float, 0, 1e6))
    grad_clip: float = setting(0.0, "clip the gradient to this global norm; 0: no clipping", Range(float, 0, 1e30))
    dropout: float = setting(0.0, "dropout rate after the embedding, on attention weights, after each block's "
                                  "two projections; 0: none", Range(float, 0, below=1))
    beta1: float = setting(0.85, "Adam's first-moment decay", Range(float, 0, below=1))
    beta2: float = setting(0.99, "Adam's second-moment decay", Range(float, 0, below=1))
    eps: float = setting(1e-8, "Adam's epsilon", Range(float, 0, 1))
    rng: str = setting("python", "'python': microgpt's random module, exactly; 'jax': JAX keys", choices=RNGS)
    dtype: str | None = setting(None, "compute dtype: float64 by default with --rng python, float32 with --rng jax; "
                                      "bfloat16 keeps float32 master weights", choices=DTYPES)
    val_fraction: float = setting(0.0, "fraction of documents held out for evaluation, from the end of the "
                                       "shuffled list", Range(float, 0, below=1))
    eval_every: int = setting(100, "steps between evaluations on the held-out documents; 0: none",
                              Range(int, 0, MAX_STEPS), resume=True)
    eval_iters: int = setting(0, "estimate each evaluation's train and val loss as nanoGPT does, over this many "
                                 "random batches; 0: the whole held-out split, once", Range(int, 0, 10**6),
                              resume=True)
    chunk: int = setting(100, "steps per jitted dispatch", Range(int, 1, 10**6), resume=True)
    preset: str = setting("microgpt", "the preset these settings started from (train/lib/presets.py)",
                          choices=tuple(PRESETS))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            if rule["range"] and not rule["range"].contains(value):
                raise UserError(f"{f.name} must be {rule['range'].describe()}, got {value!r}")
            if rule["choices"] and value not in rule["choices"]:
                raise UserError(f"{f.name} must be one of {', '.join(rule['choices'])}, got {value!r}")

        if self.min_lr > self.lr:
            raise UserError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")

    @property
    def compute_dtype(self):
        """The dtype the model computes in; "auto": bfloat16 on an accelerator, else float32."""
        import jax
        import jax.numpy as jnp

        if self.dtype == "auto":
            return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
        return getattr(jnp, self.dtype or ("float64" if self.rng == "python" else "float32"))

    @property
    def param_dtype(self):
        """Master parameters and optimizer state: float32 under bfloat16 compute."""
        import jax.numpy as jnp

        return jnp.float64 if self.compute_dtype == jnp.float64 else jnp.float32

    def model(self, vocab_size):
        """The GPTConfig of these settings for a vocabulary; an impossible one is a UserError."""
        from models import gpt

        try:
            return gpt.GPTConfig(vocab_size, self.n_embd, self.n_head, self.n_layer, self.block_size)
        except ValueError as e:
            raise UserError(str(e)) from None


MODEL_FIELDS = ("n_layer", "n_embd", "n_head", "block_size")
RESUME_MAY_CHANGE = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["resume"]}
