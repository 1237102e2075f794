"""The pictures draw what the model computes, at the right size: attention maps, the probe chart, loss
curves, and expression graphs with Graphviz and without."""

import re
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import microjax as mj
from microjax import draw
from models import gpt
from train import attention as attention_cli, gpt as gpt_cli, mlp as mlp_cli
from train.lib import pictures
from train.lib.data import Tokenizer
from train.lib.errors import UserError

from .helpers import ROOT, SMALL, png_size


def logits_from_weights(params, tokens, config, weights):
    """The GPT's logits with every attention's softmax replaced by the given weights (n_layer, H, T, T)."""
    T = len(tokens)
    x = gpt.rmsnorm(params["wte"][tokens] + params["wpe"][:T])
    for i in range(config.n_layer):
        def attend(q, k, v, i=i):
            return jnp.einsum("hts,shd->thd", weights[i], gpt._heads(v, config)).reshape(T, config.n_embd)

        x = gpt._block(params, i, x, attend)
    return gpt.linear(x, params["lm_head"])


@pytest.mark.slow
def test_attention_weights_are_the_ones_the_logits_came_from():
    config = gpt.GPTConfig(11, 8, 2, 2, 8)
    tok = Tokenizer("abcdefghij")
    rng = np.random.default_rng(3)
    params = {name: jnp.asarray(rng.normal(0, 0.3, shape)) for name, shape in gpt.param_shapes(config).items()}
    labels, weights = pictures.attention(params, config, tok, "abcaj")
    assert labels == ["BOS", "a", "b", "c", "a", "j"] and weights.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=0, atol=1e-12)  # each query's weights sum to 1
    assert np.all(weights[..., np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0.0)  # no looking ahead
    assert np.all(weights[..., np.tril_indices(6)[0], np.tril_indices(6)[1]] > 0.0)
    tokens = jnp.asarray([tok.bos] + tok.encode("abcaj"))
    logits = gpt.apply(params, tokens, config)
    np.testing.assert_array_equal(gpt.apply(params, tokens, config, return_attention=True)[0], logits)
    np.testing.assert_allclose(logits_from_weights(params, tokens, config, weights), logits, rtol=0, atol=1e-12)
    uniform = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]  # other weights give other logits
    assert np.max(np.abs(logits_from_weights(params, tokens, config, np.broadcast_to(uniform, weights.shape))
                         - logits)) > 1e-3
    batch = gpt.apply(params, jnp.stack([tokens, tokens[::-1]]), config, return_attention=True)[1]
    assert batch.shape == (2, 2, 2, 6, 6) and np.allclose(batch[0], weights, rtol=0, atol=1e-15)
    with pytest.raises(UserError, match="longer than the model's context"):
        pictures.attention(params, config, tok, "abcdefghij")


@pytest.fixture
def checkpoint_dir(tiny_data, tmp_path):
    out = tmp_path / "run"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "3", "--num-samples", "0", "--out", str(out), *SMALL])
    return out


@pytest.mark.slow
def test_attention_command_writes_one_map_per_layer_and_head(checkpoint_dir, tmp_path, capsys):
    path, blocker = tmp_path / "attention.png", tmp_path / "a-file"
    blocker.write_text("")
    attention_cli.main(["--checkpoint", str(checkpoint_dir), "--text", "abc", "--out", str(path)])
    assert "1 layer(s) x 2 heads" in capsys.readouterr().out
    assert png_size(path) == (624, 336)  # (1.2 + 2 inches a head) x (0.8 + 2 inches a layer) at 120 dpi
    for argv, words in [(["--text", "abZ"], "not in the vocabulary"), (["--text", "abcdefghij"], "longer than"),
                        (["--text", "ab", "--out", str(blocker / "a.png")], "cannot write --out")]:
        with pytest.raises(UserError, match=words):
            attention_cli.main(["--checkpoint", str(checkpoint_dir), "--out", str(path), *argv])


@pytest.mark.slow
def test_probe_chart_before_and_after_training(tiny_data, tmp_path, capsys):
    path = tmp_path / "probe.png"
    gpt_cli.main(["--data", str(tiny_data), "--steps", "3", "--num-samples", "0", *SMALL, "--probe", "a",
                  "--probe-plot", str(path)])
    assert f"saved the next-character chart to {path}" in capsys.readouterr().out
    assert png_size(path) == (960, 420)  # 8 x 3.5 inches at 120 dpi
    with pytest.raises(UserError, match="--probe-plot needs --probe"):
        gpt_cli.main(["--data", str(tiny_data), "--probe-plot", str(path)])


# -- expression graphs, drawn by Graphviz and without it ----------------------------------------------
GRAPH = mj.draw_dot(lambda x: (x * 2.0 + 1.0).tanh(), 0.5)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.mark.slow
def test_layered_layout_puts_every_edge_left_to_right_without_recursion():
    nodes, edges = draw.parse_dot(GRAPH)
    assert len(nodes) == 6 and len(edges) == 5 and nodes["n3"] == ["tanh", "data 0.9640", "grad 1.0000"]
    xy = draw.layered_layout(nodes, edges)
    assert all(xy[a][0] < xy[b][0] for a, b in edges) and xy["n3"] == (3, 0.0)
    assert len(set(xy.values())) == len(xy)  # no two boxes on one spot
    chain = "\n".join([f'n{i} [label="{{ x{i} }}"];\nn{i} -> n{i + 1};' for i in range(5000)] + ['n5000 [label="y"];'])
    xy = draw.layered_layout(*draw.parse_dot(chain))  # far past Python's recursion limit
    assert xy["n0"] == (0, 0.0) and xy["n5000"] == (5000, 0.0)


@pytest.mark.slow
def test_render_without_graphviz(tmp_path, monkeypatch):
    png, svg = draw.render(GRAPH, tmp_path / "g.png", engine="matplotlib"), tmp_path / "g.svg"
    layers, tallest = 4, 2
    assert png_size(png) == (round(layers * draw.COLUMN * draw.DPI), round((tallest * draw.ROW + 0.2) * draw.DPI))
    monkeypatch.setattr(shutil, "which", lambda name: None)  # a machine without Graphviz: the default route
    mj.render(GRAPH, svg)
    text = svg.read_text()
    assert "Matplotlib" in text and all(word in text for word in ("tanh", "data 0.9640", "grad 0.1413"))
    with pytest.raises(RuntimeError, match="not installed"):
        mj.render(GRAPH, svg, engine="dot")


@needs_dot
def test_render_with_graphviz(tmp_path):
    svg = mj.render(GRAPH, tmp_path / "g.svg")  # dot is the default where it is installed
    text = svg.read_text()
    assert "Generated by graphviz" in text and text.count('class="node"') == 6 and "grad 0.1413" in text
    width, height = png_size(mj.render(GRAPH, tmp_path / "g.png", engine="dot"))
    assert width > 2 * height > 0  # left to right
    with pytest.raises(RuntimeError, match="dot could not write"):
        mj.render(GRAPH, tmp_path / "missing" / "g.svg", engine="dot")


def test_render_refuses_what_it_cannot_draw(tmp_path):
    for kwargs, words in [({"path": tmp_path / "graph"}, "give it a suffix"), ({"engine": "neato"}, "unknown engine"),
                          ({"dot_text": "digraph G {}"}, "no labelled nodes")]:
        with pytest.raises(ValueError, match=words):
            mj.render(**{"dot_text": GRAPH, "path": tmp_path / "g.svg", "engine": "matplotlib", **kwargs})


@pytest.mark.slow
def test_mlp_draw_command_and_microjax_imports_neither_jax_nor_matplotlib(tmp_path, capsys):
    mlp_cli.main(["--draw", str(tmp_path / "graph.svg"), "--steps", "1"])
    assert (tmp_path / "graph.svg").read_text().count(">tanh<") == 9  # one box per neuron
    loaded = subprocess.run([sys.executable, "-c", "import sys, microjax; print(sorted({'jax', 'matplotlib'} & "
                             "set(sys.modules)))"], capture_output=True, text=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]", loaded.stderr


@pytest.mark.slow
def test_the_attention_title_names_the_model_not_where_it_was_saved(checkpoint_dir, tmp_path, monkeypatch):
    titles = []
    real = pictures.plot_attention
    monkeypatch.setattr(pictures, "plot_attention", lambda *a, title=None: titles.append(title) or real(*a))
    attention_cli.main(["--checkpoint", str(checkpoint_dir), "--text", "abc", "--out", str(tmp_path / "a.png")])
    assert titles == ["attention over 'abc': 1 layer(s), 2 heads, n_embd 8"]


def test_the_readme_pictures_are_readable_at_its_width():
    """GitHub shows a picture at most about 880 px wide. The expression graph's text must stay at least
    9 px tall there: a 14 pt label (18.7 px) allows a picture up to 880 * 18.7 / 9 = 1,830 px, 1,370 pt."""
    svg = (ROOT / "docs" / "graph.svg").read_text()
    width = float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg).group(1))
    assert width <= 1370, width
    assert "/tmp" not in svg and "runs/" not in svg
    for name in ("attention.png", "probe.png"):
        assert png_size(ROOT / "docs" / name)[0] <= 1830


def test_runs_that_train_alike_are_drawn_apart(tmp_path, monkeypatch):
    """Notebook 4's three curves, per-step losses a few thousandths apart, drawn on one axis made one
    line: compare_losses gives each its own style and draws the differences from the reference below."""
    rows = lambda losses: [{"step": i + 1, "loss": x} for i, x in enumerate(losses)]  # noqa: E731
    base = list(np.linspace(3.0, 2.0, 60) + 0.05 * np.sin(np.arange(60)))
    runs = {"float32": rows(base), "resumed": rows(base)[30:], "bfloat16": rows([x + 0.003 for x in base])}
    figures = []
    monkeypatch.setattr(pictures, "save", lambda fig, path: figures.append(fig) or path)
    pictures.compare_losses(runs, "float32", tmp_path / "c.png")
    top, bottom = figures[0].axes
    styles = {(l.get_color(), l.get_linestyle(), l.get_marker()) for l in top.get_lines()}
    assert len(top.get_lines()) == 3 and len(styles) == 3
    differences = {l.get_label(): l.get_ydata() for l in bottom.get_lines() if l.get_label().endswith("float32")}
    assert np.all(differences["resumed - float32"] == 0)
    assert np.allclose(differences["bfloat16 - float32"], 0.003)
