"""Check and see: train.check passes where it should and fails where it must; the pictures draw what the
model computes, at the right size, with Graphviz and without."""

import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import microjax as mj
from microjax import draw
from models import gpt
from train import attention as attention_cli, check, gpt as gpt_cli, gradcheck, mlp as mlp_cli, pictures
from train.cli import UserError
from train.data import Tokenizer

from .conftest import ROOT
from .test_train import GOLDEN_LOSSES, SMALL

TINY_GPT = ["--n-layer", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "8"]


def table(out):
    """{parameter: (|microjax - jax|, |jax - fd|)} from the printed rows."""
    rows = re.findall(r"^(\S+) +\(.*?\) +(\S+) +\S+ +(\S+) +\S+ +\d+(?:  <- out of tolerance)?$", out, re.M)
    return {name: (float(a), float(b)) for name, a, b in rows}


@pytest.mark.slow
def test_default_gpt_passes_at_microgpts_first_step(names, capsys):
    assert check.main(["--data", str(names)]) == 0
    out = capsys.readouterr().out
    assert f"loss {GOLDEN_LOSSES[1]:.12f}" in out  # microgpt.py's printed step-1 loss: the same weights and name
    rows = table(out)
    assert len(rows) == 9 and "layer0.mlp_fc2" in rows
    assert all(exact < 1e-14 and 0 < fd < 1e-9 for exact, fd in rows.values())
    assert "PASS: all 9 parameters" in out and re.search(r"time: microjax .* then .* a call", out)


@pytest.mark.slow
def test_two_layer_gpt_and_the_mlp_pass(names, capsys):
    assert check.main(["--data", str(names), *TINY_GPT, "--doc", "emma", "--fd-samples", "16"]) == 0
    out = capsys.readouterr().out
    assert "'emma' over 5 positions" in out and "layer1.attn_wq" in table(out)
    assert check.main(["--model", "mlp"]) == 0
    out = capsys.readouterr().out
    assert list(table(out)) == [f"layer{i}.{k}" for i in range(3) for k in "wb"]
    assert "PASS: all 6 parameters" in out


def corrupted(problem, name, delta):
    """The same loss, whose JAX gradient is off by `delta` in one entry of one parameter."""

    @jax.custom_vjp
    def loss(params):
        return problem.jax_loss(params)

    def backward(grads, ct):
        return ({k: ct * (g.at[(0,) * g.ndim].add(delta) if k == name else g) for k, g in grads.items()},)

    loss.defvjp(jax.value_and_grad(problem.jax_loss), backward)
    return problem._replace(jax_loss=loss)


def test_a_corrupted_jax_gradient_fails_on_both_counts(monkeypatch, capsys):
    original = check.mlp_problem
    monkeypatch.setattr(check, "mlp_problem", lambda seed: corrupted(original(seed), "layer1.w", 1e-5))
    assert check.main(["--model", "mlp"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 1 of 6 parameters out of tolerance (layer1.w)" in out
    rows = table(out)
    assert rows["layer1.w"][0] == pytest.approx(1e-5, rel=1e-3) and rows["layer1.w"][1] == pytest.approx(1e-5, rel=1e-3)
    assert all(exact < 1e-14 for name, (exact, _) in rows.items() if name != "layer1.w")


def test_zero_tolerance_against_finite_differences_fails(capsys):
    assert check.main(["--model", "mlp", "--fd-rtol", "0", "--fd-atol", "0"]) == 1
    assert "FAIL: 6 of 6 parameters" in capsys.readouterr().out


def test_a_relu_kink_within_the_step_does_not_fail_the_check():
    """relu(x - 3e-7) at x = 0: the derivative is 0, but a central difference at s = 1e-5 straddles the
    kink and reads ~0.5; the one-sided difference to the left does not. Kinks on both sides within every
    step do spoil every estimate, and a wrong derivative shows whatever the kinks."""
    one_kink = lambda x: jax.nn.relu(x - 3e-7)  # noqa: E731
    assert gradcheck._fd_error(one_kink, 0.0, 1.0, 1e-5, 0.0) < 1e-12
    assert gradcheck._fd_error(one_kink, 0.0, 1.0, 1e-3, 0.0) < 1e-12
    assert gradcheck._fd_error(one_kink, 0.0, 1.0, 1e-5, 1e-6) == pytest.approx(1e-6)
    both_sides = lambda x: jax.nn.relu(x - 3e-7) + 2 * jax.nn.relu(-x - 3e-7)  # noqa: E731
    assert gradcheck._fd_error(both_sides, 0.0, 1.0, 1e-5, 0.0) < 1e-12  # h / 100 still fits between them
    assert gradcheck._fd_error(both_sides, 0.0, 1.0, 1e-3, 0.0) > 0.4


def test_finite_differences_sample_coordinates_per_parameter():
    result = check.gradient_check(check.mlp_problem(0), fd_samples=3)
    assert [r.fd_coords for r in result.rows] == [3, 3, 3, 3, 3, 1]
    assert result.seconds["fd_evals"] == 13 * 16 and result.order == 1


@pytest.mark.slow
def test_order_two_passes_on_a_tiny_gpt_and_the_mlp(names, capsys):
    assert check.main(["--order", "2", "--data", str(names), *TINY_GPT, "--doc", "emma"]) == 0
    out = capsys.readouterr().out
    assert "the Hessian-vector product along a random direction" in out and "PASS: all 15 parameters" in out
    rows = table(out)
    assert len(rows) == 15 and all(exact < 1e-13 and 0 < fd < 1e-8 for exact, fd in rows.values())
    assert check.main(["--order", "2", "--model", "mlp"]) == 0
    assert "13 gradient evaluations" in capsys.readouterr().out


@pytest.mark.slow
def test_order_two_sees_a_curvature_error_the_gradient_cannot():
    """A term 0.5 (w - w0)^2 added to microjax's loss alone: zero gradient at w0, Hessian entry 1."""
    problem = check.mlp_problem(0)
    w0, loss = problem.params["layer1.w"][0][0], problem.scalar_loss
    wrong = problem._replace(scalar_loss=lambda p: loss(p) + 0.5 * (p["layer1.w"][0][0] - w0) ** 2)
    assert all(r.ok(gradcheck.Tolerance()) for r in gradcheck.gradient_check(wrong).rows)
    rows = {r.name: r for r in gradcheck.hvp_check(wrong, seed=3).rows}
    assert [name for name, r in rows.items() if not r.ok(gradcheck.Tolerance())] == ["layer1.w"]
    rng = np.random.default_rng(3)  # hvp_check's direction, drawn parameter by parameter
    v = {name: rng.standard_normal(np.shape(value)) for name, value in problem.params.items()}
    assert rows["layer1.w"].exact == pytest.approx(abs(v["layer1.w"][0, 0]), rel=1e-9)  # H v is off by v there


@pytest.mark.parametrize("argv, words", [
    (["--model", "mlp", "--n-layer", "2"], "--n-layer applies to --model gpt only"),
    (["--model", "mlp", "--doc", "emma"], "--doc applies"),
    (["--n-embd", "10", "--n-head", "3"], "divisible"),
    (["--n-layer", "0"], "argument --n-layer: expected an integer >= 1 and <= 4, got '0'"),
    (["--n-embd", "64"], "argument --n-embd: expected an integer >= 1 and <= 32"),
    (["--rtol", "nan"], "argument --rtol: expected a number >= 0 and < 1, got 'nan'"),
    (["--atol", "inf"], "argument --atol: expected"),
    (["--fd-rtol=-1e-3"], "argument --fd-rtol: expected"),
    (["--fd-atol", "1e300"], "argument --fd-atol: expected"),
    (["--fd-step", "0"], "argument --fd-step: expected a number <= 1 and > 0, got '0'"),
    (["--fd-step", "nan"], "argument --fd-step: expected"),
    (["--fd-step", "2"], "argument --fd-step: expected"),
    (["--fd-samples", "-4"], "argument --fd-samples: expected an integer >= 1"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["--order", "3"], "argument --order: expected an integer >= 1 and <= 2, got '3'"),
    (["--model", "gpt-5"], "argument --model: invalid choice: 'gpt-5'"),
])
def test_bad_flags_are_refused_before_any_work(argv, words, monkeypatch):
    monkeypatch.setattr(check, "gpt_problem", None)  # never reached
    with pytest.raises(UserError, match=re.escape(words)):
        check.main(argv)


def test_bad_documents_are_one_line_errors(names, tmp_path):
    with pytest.raises(UserError, match="not in the vocabulary"):
        check.main(["--data", str(names), "--doc", "Emma"])
    with pytest.raises(UserError, match="data file not found"):
        check.main(["--data", str(tmp_path / "missing.txt")])


@pytest.mark.slow
def test_exit_status_from_the_command_line():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "train.check", *args], capture_output=True, text=True, cwd=ROOT)

    failed = run("--model", "mlp", "--fd-atol", "0", "--fd-rtol", "0")
    assert failed.returncode == 1 and "FAIL" in failed.stdout and not failed.stderr
    refused = run("--model", "mlp", "--n-embd", "8")
    assert (refused.returncode, refused.stderr) == (2, "error: --n-embd applies to --model gpt only\n")


# -- pictures ---------------------------------------------------------------------------------------
def png_size(path):
    """(width, height) in pixels, from the PNG header."""
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


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


def test_layered_layout_puts_every_edge_left_to_right_without_recursion():
    nodes, edges = draw.parse_dot(GRAPH)
    assert len(nodes) == 6 and len(edges) == 5 and nodes["n3"] == ["tanh", "data 0.9640", "grad 1.0000"]
    xy = draw.layered_layout(nodes, edges)
    assert all(xy[a][0] < xy[b][0] for a, b in edges) and xy["n3"] == (3, 0.0)
    assert len(set(xy.values())) == len(xy)  # no two boxes on one spot
    chain = "\n".join([f'n{i} [label="{{ x{i} }}"];\nn{i} -> n{i + 1};' for i in range(5000)] + ['n5000 [label="y"];'])
    xy = draw.layered_layout(*draw.parse_dot(chain))  # far past Python's recursion limit
    assert xy["n0"] == (0, 0.0) and xy["n5000"] == (5000, 0.0)


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


def test_mlp_draw_command_and_microjax_imports_neither_jax_nor_matplotlib(tmp_path, capsys):
    mlp_cli.main(["--draw", str(tmp_path / "graph.svg"), "--steps", "1"])
    assert (tmp_path / "graph.svg").read_text().count(">tanh<") == 9  # one box per neuron
    loaded = subprocess.run([sys.executable, "-c", "import sys, microjax; print(sorted({'jax', 'matplotlib'} & "
                             "set(sys.modules)))"], capture_output=True, text=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]", loaded.stderr
