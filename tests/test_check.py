"""train.check passes where it should and fails where it must: the gradient and Hessian-vector products
by microjax, jax and finite differences (the pictures are tests/test_pictures.py's)."""

import re

import jax
import numpy as np
import pytest

from train import check
from train.lib import gradcheck
from train.lib.errors import UserError

from .helpers import GOLDEN_LOSSES, run_module

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


@pytest.mark.slow
def test_a_corrupted_jax_gradient_fails_on_both_counts(monkeypatch, capsys):
    original = check.mlp_problem
    monkeypatch.setattr(check, "mlp_problem", lambda seed: corrupted(original(seed), "layer1.w", 1e-5))
    assert check.main(["--model", "mlp"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 1 of 6 parameters out of tolerance (layer1.w)" in out
    rows = table(out)
    assert rows["layer1.w"][0] == pytest.approx(1e-5, rel=1e-3) and rows["layer1.w"][1] == pytest.approx(1e-5, rel=1e-3)
    assert all(exact < 1e-14 for name, (exact, _) in rows.items() if name != "layer1.w")


@pytest.mark.slow
def test_zero_tolerance_against_finite_differences_fails(capsys):
    assert check.main(["--model", "mlp", "--fd-rtol", "0", "--fd-atol", "0"]) == 1
    assert "FAIL: 6 of 6 parameters" in capsys.readouterr().out


@pytest.mark.slow
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


@pytest.mark.slow
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
    failed = run_module("train.check", "--model", "mlp", "--fd-atol", "0", "--fd-rtol", "0")
    assert failed.returncode == 1 and "FAIL" in failed.stdout and not failed.stderr
    refused = run_module("train.check", "--model", "mlp", "--n-embd", "8")
    assert (refused.returncode, refused.stderr) == (2, "error: --n-embd applies to --model gpt only\n")
