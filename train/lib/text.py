"""One continuous text as training data (`--format text`), as nanoGPT's shakespeare_char prepares it: the
vocabulary is the text's sorted characters (no BOS), the first 90% of the tokens train and the last 10%
validate, and each step trains on random windows of block_size + 1 tokens.

Line ends are made "\\n" first, so that a file saved on Windows gives the same tokens.
"""

import numpy as np

from .data import Tokenizer, read_text
from .errors import UserError


def load_text(path):
    """The file's text, its line ends as "\\n"."""
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError(f"data file is empty: {path}")
    return text


def tokenizer_of(text):
    return Tokenizer("".join(sorted(set(text))), has_bos=False)


def split(tokens, val_fraction):
    """(train, val): the first 1 - val_fraction of the tokens and the rest, as nanoGPT's int(n * 0.9)."""
    n_train = int(len(tokens) * (1 - val_fraction))
    return tokens[:n_train], tokens[n_train:]


def windows(tokens, starts, block_size):
    """Rows tokens[s : s + block_size + 1] for each start: inputs row[:-1], targets row[1:]. Works on numpy
    and jax arrays, starts of any shape."""
    return tokens[starts[..., None] + np.arange(block_size + 1)]


def whole_split_starts(n_tokens, block_size):
    """Starts of the windows that cover a split once, side by side: each token but the first is a target
    exactly once (the last partial window is left out)."""
    return np.arange((n_tokens - 1) // block_size) * block_size
