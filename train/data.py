"""Documents and the char-level tokenizer with a BOS token, as microgpt builds them."""

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from .cli import UserError

NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"  # makemore @ 988aa59


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microjax"


def embedded_names():
    """The copy of makemore's names.txt that ships inside the package (see train/dataset/README.md)."""
    return Path(str(resources.files(__package__) / "dataset" / "names.txt"))


def resolve_data_path(path=None):
    """--data PATH, else $MICROJAX_DATA, else the names.txt shipped with the package: never the network."""
    return Path(path or os.environ.get("MICROJAX_DATA") or embedded_names())


def fingerprint(docs):
    """sha256 of the documents in file order: a checkpoint remembers which data it was trained on."""
    return hashlib.sha256("\n".join(docs).encode()).hexdigest()


def load_docs(path):
    """The stripped, non-empty lines of a UTF-8 text file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    if path.is_dir():
        raise UserError(f"data path is a directory, not a file: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except PermissionError:
        raise UserError(f"data file is not readable: {path}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"data file is not UTF-8 text: {path} (byte {e.start})") from None
    docs = [line.strip() for line in text.splitlines() if line.strip()]
    if not docs:
        raise UserError(f"data file has no documents (no non-empty lines): {path}")
    return docs


@dataclass(frozen=True)
class Tokenizer:
    """Token i is chars[i]; BOS, which begins and ends every document, is len(chars)."""

    chars: str

    @classmethod
    def from_docs(cls, docs):
        return cls("".join(sorted(set("".join(docs)))))

    @property
    def bos(self):
        return len(self.chars)

    @property
    def vocab_size(self):
        return len(self.chars) + 1

    @cached_property
    def _index(self):
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text):
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = "".join(sorted({c for c in text if c not in self._index}))
            raise UserError(f"character(s) {unknown!r} in {text!r} are not in the vocabulary {self.chars!r}") from None

    def decode(self, tokens):
        return "".join(self.chars[t] for t in tokens if t != self.bos)


def encode_docs(docs, tokenizer, block_size):
    """Rows [BOS, chars..., BOS] cut to block_size + 1 tokens and padded, and each row's count of
    real positions n = min(block_size, len(doc) + 1), as microgpt takes them.

    Returns (rows int32 (N, block_size + 1), n int32 (N,), how many documents were truncated).
    """
    lengths = np.array([len(doc) for doc in docs])
    chars = np.array(tokenizer.encode("".join(docs)), np.int32)
    starts = np.cumsum(lengths) - lengths
    rows = np.full((len(docs), block_size + 1), tokenizer.bos, np.int32)
    for j in range(1, block_size + 1):  # column j holds each document's character j - 1
        has = lengths >= j
        rows[has, j] = chars[starts[has] + j - 1]
    n = np.minimum(lengths + 1, block_size).astype(np.int32)
    truncated = int(np.sum(lengths > block_size - 1))
    return rows, n, truncated
