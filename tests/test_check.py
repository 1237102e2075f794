"""python -m train.check: the gradient three ways passes where it should and fails where it must."""

import re
import subprocess
import sys

import jax
import pytest

from train import check
from train.cli import UserError

from .conftest import ROOT
from .test_train import GOLDEN_LOSSES

TINY_GPT = ["--n-layer", "2", "--n-embd", "8", "--n-head", "2", "--block-size", "8"]


def table(out):
    """{parameter: (|microjax - jax|, |jax - fd|)} from the printed rows."""
    rows = re.findall(r"^(\S+) +\(.*?\) +(\S+) +\S+ +(\S+) +\S+ +\d+(?:  <- out of tolerance)?$", out, re.M)
    return {name: (float(a), float(b)) for name, a, b in rows}


def test_default_gpt_passes_at_microgpts_first_step(names, capsys):
    assert check.main(["--data", str(names)]) == 0
    out = capsys.readouterr().out
    assert f"loss {GOLDEN_LOSSES[1]:.12f}" in out  # microgpt.py's printed step-1 loss: the same weights and name
    rows = table(out)
    assert len(rows) == 9 and "layer0.mlp_fc2" in rows
    assert all(exact < 1e-14 and 0 < fd < 1e-9 for exact, fd in rows.values())
    assert "PASS: all 9 parameters" in out and re.search(r"time: microjax .* then .* a call", out)


def test_two_layer_gpt_and_the_mlp_pass(names, capsys):
    assert check.main(["--data", str(names), *TINY_GPT, "--doc", "emma"]) == 0
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
    """relu(x - 3e-7) at x = 0: the derivative is 0, but the central difference at h = 1e-5 straddles the
    kink and reads ~0.5; at h / 100 it does not."""
    f = lambda x: jax.nn.relu(x - 3e-7)  # noqa: E731
    assert check._fd_error(f, 0.0, 1.0, 1e-5, 0.0) == 0.0
    assert check._fd_error(f, 0.0, 1.0, 1e-5, 1e-6) == pytest.approx(1e-6)  # a wrong derivative still shows
    assert check._fd_error(f, 0.0, 1.0, 1e-3, 0.0) > 0.4  # a kink within all three steps does


def test_finite_differences_sample_coordinates_per_parameter():
    result = check.gradient_check(check.mlp_problem(0), fd_samples=3)
    assert [r.fd_coords for r in result.rows] == [3, 3, 3, 3, 3, 1]
    assert result.seconds["fd_evals"] == 6 * 16 and result.order == 1


@pytest.mark.parametrize("argv, words", [
    (["--model", "mlp", "--n-layer", "2"], "--n-layer applies to --model gpt only"),
    (["--model", "mlp", "--doc", "emma"], "--doc applies"),
    (["--n-embd", "10", "--n-head", "3"], "divisible"),
    (["--n-layer", "0"], "--n-layer must be between 1 and 8"),
    (["--n-embd", "100000"], "--n-embd must be between 1 and 128"),
    (["--rtol", "nan"], "--rtol must be >= 0 and < 1"),
    (["--atol", "inf"], "--atol must be"),
    (["--fd-rtol=-1e-3"], "--fd-rtol must be"),
    (["--fd-atol", "1e300"], "--fd-atol must be"),
    (["--fd-step", "0"], "--fd-step must be > 0 and <= 0.1"),
    (["--fd-step", "nan"], "--fd-step must be"),
    (["--fd-step", "2"], "--fd-step must be"),
    (["--fd-samples", "-4"], "--fd-samples must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
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
    refused = run("--model", "gpt-5")
    assert refused.returncode == 2 and "invalid choice: 'gpt-5'" in refused.stderr
    refused = run("--fd-step", "0")
    assert refused.returncode == 2 and refused.stderr == "error: --fd-step must be > 0 and <= 0.1, got 0.0\n"
