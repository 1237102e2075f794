"""What several test modules share: the repository root, microgpt's published figures, tiny settings,
and small helpers. Test modules import from here, never from one another."""

import json
import subprocess
import sys
from pathlib import Path

import chex
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# microgpt.py's published losses (../shared/reference/microgpt.md) and its 20 samples
GOLDEN_LOSSES = {1: 3.365966947585, 2: 3.424272783872, 3: 3.177802125458, 100: 3.366930921179,
                 200: 2.309743303752, 300: 2.317845353077, 400: 2.342847375394, 500: 2.064466206727,
                 600: 2.485056105942, 700: 2.335729604323, 800: 2.263217700069, 900: 2.778503547873,
                 1000: 2.649694469741}
GOLDEN_SAMPLES = ("kamon ann karai jaire vialan karia yeran anna areli kaina "
                  "konna keylen liole alerin earan lenne kana lara alela anton").split()
SMALL = ["--n-embd", "8", "--n-head", "2", "--block-size", "8"]  # a model that compiles in a moment


def tree_allclose(a, b, rtol, atol=0.0):
    """Same structure, and every leaf equal within rtol/atol, compared in float64."""
    chex.assert_trees_all_equal_structs(a, b)
    chex.assert_trees_all_close(*(jax_tree_f64(t) for t in (a, b)), rtol=rtol, atol=atol)


def jax_tree_f64(tree):
    import jax

    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def read_metrics(path):
    return [json.loads(line) for line in open(path)]


def run_module(*args, **kwargs):
    """`python -m ARGS` from the repository root, its output captured as text."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, **kwargs)


def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
