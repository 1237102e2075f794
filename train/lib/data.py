"""Documents from a text file, and the char-level tokenizer with a BOS token, as microgpt builds them.

A text file is read as the text it holds, whichever system wrote it: UTF-8 with or without a byte-order
mark, UTF-16 or UTF-32 with one (what Windows editors call "Unicode"), Windows, Unix or old Mac line
ends, and accents composed or decomposed (macOS writes "é" as e + U+0301) all give the same documents.
"""

import codecs
import hashlib
import os
import random
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import UserError
from .presets import data_set

NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"  # makemore @ 988aa59


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "microjax"


def embedded_names():
    """The copy of makemore's names.txt that ships inside the package (see train/dataset/README.md)."""
    return Path(str(resources.files("train") / "dataset" / "names.txt"))


def resolve_data_path(path=None, preset="microgpt"):
    """--data PATH, else the preset's shipped data set; for microgpt's preset $MICROJAX_DATA first, else
    the names.txt shipped with the package: never the network."""
    if path:
        return Path(path)
    if preset != "microgpt":
        return data_set(preset)
    return Path(os.environ.get("MICROJAX_DATA") or embedded_names())


def fingerprint(docs):
    """sha256 of the documents in file order: a checkpoint remembers which data it was trained on."""
    return hashlib.sha256("\n".join(docs).encode()).hexdigest()


# Byte-order marks and the codec each one means; UTF-32's come first, since UTF-16 LE's is a prefix of one.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(raw, path):
    """The text of a file's bytes: the codec its byte-order mark names, else UTF-8. Then one form for
    the same text: byte-order marks inside it (files joined with cat) dropped, accents composed (NFC)."""
    codec = next((name for bom, name in BOMS if raw.startswith(bom)), "utf-8")
    if codec == "utf-8" and b"\0" in raw:
        raise UserError(f"data file is not text: {path} (it holds NUL bytes: a binary file, or UTF-16 "
                        "without a byte-order mark)")
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        if codec != "utf-8":
            raise UserError(f"data file is not {codec.upper()} text, as its byte-order mark says: {path} "
                            f"(byte {e.start})") from None
        raise UserError(f"data file is not UTF-8 text: {path} (byte {e.start} is {raw[e.start]:#04x}); if it was "
                        f"saved as Windows-1252 or Latin-1, convert it: iconv -f cp1252 -t utf-8 {path}") from None
    return unicodedata.normalize("NFC", text.replace("\ufeff", ""))


def load_docs(path):
    """The stripped, non-empty lines of a text file (see the module's docstring for which files)."""
    docs = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not docs:
        raise UserError(f"data file has no documents (no non-empty lines): {path}")
    return docs


def read_text(path):
    """The text a file holds, or a UserError saying why it cannot be read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"data path is a directory, not a file: {path}") from None
    except PermissionError:
        raise UserError(f"data file is not readable: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read data file {path}: {e.strerror or e}") from None
    return decode_text(raw, path)


@dataclass(frozen=True)
class Tokenizer:
    """Token i is chars[i]; BOS, which begins and ends every document, is len(chars). A tokenizer for one
    continuous text (`has_bos=False`, nanoGPT's shakespeare_char) has the characters alone, and no BOS."""

    chars: str
    has_bos: bool = True

    @classmethod
    def from_docs(cls, docs):
        return cls("".join(sorted(set("".join(docs)))))

    @property
    def bos(self):
        """BOS's token, or None for a text tokenizer."""
        return len(self.chars) if self.has_bos else None

    @property
    def vocab_size(self):
        return len(self.chars) + self.has_bos

    @cached_property
    def _index(self):
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text):
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = "".join(sorted({c for c in text if c not in self._index}))
            raise UserError(f"character(s) {unknown!r} in {text!r} are not in the vocabulary {self.chars!r}") from None

    def encode_array(self, text):
        """`encode` at numpy speed, as int32 (a million characters in milliseconds)."""
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
        table = np.frombuffer(self.chars.encode("utf-32-le"), np.uint32)
        order = np.argsort(table)  # chars are sorted as a tokenizer makes them; any order works
        ordered = table[order]
        found = np.minimum(np.searchsorted(ordered, codes), len(table) - 1)
        bad = ordered[found] != codes
        if bad.any():
            raise UserError(f"character {chr(codes[np.argmax(bad)])!r} is not in the vocabulary {self.chars!r}")
        return order[found].astype(np.int32)

    def decode(self, tokens):
        return "".join(self.chars[t] for t in tokens if t != self.bos)


def microgpt_order(docs, seed):
    """microgpt.py's first steps: Python's `random` seeded with `seed` shuffles the documents, and the
    tokenizer is their sorted characters. Returns (rng, shuffled docs, tokenizer); the same generator
    draws the weights next (`models.gpt_scalar.init`), then the samples."""
    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    return rng, docs, Tokenizer.from_docs(docs)


def encode_docs(docs, tokenizer, block_size):
    """Rows [BOS, chars..., BOS] cut to block_size + 1 tokens and padded, and each row's count of
    real positions n = min(block_size, len(doc) + 1), as microgpt takes them.

    Returns (rows int32 (N, block_size + 1), n int32 (N,), how many documents were truncated).
    """
    lengths = np.array([len(doc) for doc in docs])
    chars = tokenizer.encode_array("".join(docs))
    starts = np.cumsum(lengths) - lengths
    rows = np.full((len(docs), block_size + 1), tokenizer.bos, np.int32)
    for j in range(1, block_size + 1):  # column j holds each document's character j - 1
        has = lengths >= j
        rows[has, j] = chars[starts[has] + j - 1]
    n = np.minimum(lengths + 1, block_size).astype(np.int32)
    truncated = int(np.sum(lengths > block_size - 1))
    return rows, n, truncated
