"""Named configurations: `--preset NAME` starts from one, and every flag given overrides its fields.

- microgpt: microgpt.py exactly (TrainConfig's defaults), on names.txt.
- shakespeare-char-cpu: nanoGPT's shakespeare_char run as its README gives it for a CPU (4 layers, 4 heads,
  n_embd 128, block 64, batch 12, 2,000 iterations, 20-batch evaluations), on microgpt's architecture.
- shakespeare-char: nanoGPT's config/train_shakespeare_char.py (6 layers, 6 heads, n_embd 384, block 256,
  batch 64, dropout 0.2, 5,000 iterations), in bfloat16 where the device has it.

Each value is nanoGPT's own where nanoGPT sets one (its train.py defaults included: AdamW's beta1 0.9,
weight decay 0.1, clipping at 1.0), so that the losses can be compared with its published ones.
"""

from importlib import resources
from pathlib import Path

_NANOGPT = {  # train.py's defaults and config/train_shakespeare_char.py, shared by both presets
    "format": "text", "rng": "jax", "val_fraction": 0.1, "lr": 1e-3, "min_lr": 1e-4, "schedule": "cosine",
    "warmup": 100, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0,
    "eval_every": 250,
}

PRESETS = {  # name -> (TrainConfig fields, the data file shipped in train/dataset/)
    "microgpt": ({}, "names.txt"),
    "shakespeare-char-cpu": ({**_NANOGPT, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                              "batch_size": 12, "steps": 2000, "dropout": 0.0, "eval_iters": 20, "dtype": "float32",
                              "chunk": 250}, "tinyshakespeare.txt"),
    "shakespeare-char": ({**_NANOGPT, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256,
                          "batch_size": 64, "steps": 5000, "dropout": 0.2, "eval_iters": 200, "dtype": "auto",
                          "chunk": 250}, "tinyshakespeare.txt"),
}
DEFAULT = "microgpt"
ABOUT = {  # for --help
    "microgpt": "microgpt.py exactly, on names.txt",
    "shakespeare-char-cpu": "nanoGPT's Shakespeare on a CPU (4 layers, n_embd 128, block 64, 2,000 steps)",
    "shakespeare-char": "nanoGPT's Shakespeare for a GPU (6 layers, n_embd 384, block 256, 5,000 steps, "
                        "dropout 0.2, bfloat16 where the device has it)",
}


def settings(name):
    """The TrainConfig fields of preset `name`, the preset's own name among them."""
    return {**PRESETS[name][0], "preset": name}


def data_set(name):
    """The shipped data file preset `name` trains on (see train/dataset/README.md)."""
    return Path(str(resources.files("train") / "dataset" / PRESETS[name][1]))
