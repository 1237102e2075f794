"""python -m train.check: the loss gradient three ways, per parameter, in float64.

microjax on the scalar twin (models/gpt_scalar.py, microjax/nn.py), `jax.grad` on the JAX model
(models/gpt.py, models/mlp.py), and finite differences of the JAX loss. `--order 2` checks
Hessian-vector products instead: microjax's jvp(grad) against JAX's, and against finite differences
of jax.grad. Exit status 0 when every figure is within tolerance, 1 when one is not.

The problems are train/lib/problems.py's (`gpt_problem`, `mlp_problem`); the comparison is
train/lib/gradcheck.py's (`gradient_check`, `hvp_check`, `print_check`).
"""

import sys

from .cli import SEED, ArgumentParser, UserError, add_config_flags, number, run as run_cli
from .lib.config import MODEL_FIELDS, TrainConfig
from .lib.gradcheck import FD_SAMPLES, FD_STEP, Tolerance, gradient_check, hvp_check, print_check
from .lib.problems import gpt_problem, mlp_problem

MAX_FD_STEP = 1  # the weights are O(0.1-1): a step past that measures another function
# The scalar twin's graph grows as n_embd^2 n_layer a position: past these sizes --order 2 takes minutes
# and gigabytes (bench/README.md); the defaults take a second or two.
LIMITS = {"n_layer": 4, "n_embd": 32, "n_head": 32, "block_size": 32}


def build_parser():
    tol = Tolerance()
    p = ArgumentParser(prog="python -m train.check", description=__doc__.split("\n\n")[0],
                       epilog=f"Each figure passes when it is <= atol + rtol * (the parameter's largest |jax| "
                              f"value). Defaults: microjax vs jax --rtol {tol.rtol:g} --atol {tol.atol:g} (exact "
                              f"methods, apart by float64 rounding, ~1e-15); jax vs finite differences --fd-rtol "
                              f"{tol.fd_rtol:g} --fd-atol {tol.fd_atol:g} (differences at h = {FD_STEP:g} agree "
                              f"to ~1e-10; the figure is the smallest error of the central and one-sided ones at "
                              f"h, h / 10 and h / 100, so that a ReLU kink within h of the point does not count).")
    p.add_argument("--model", choices=("gpt", "mlp"), default="gpt",
                   help="microgpt's GPT (default) or the lesson's 3-4-4-1 MLP on its 4 examples")
    p.add_argument("--order", type=number(int, 1, 2), default=1,
                   help="1: the gradient (default); 2: Hessian-vector products along a random direction")
    p.add_argument("--data", help="GPT: text file, one document per line (default: $MICROJAX_DATA, else the "
                                  "names.txt shipped with microjax)")
    p.add_argument("--doc", help="GPT: the document whose loss is differentiated (default: microgpt's first)")
    add_config_flags(p, TrainConfig, MODEL_FIELDS, highest=LIMITS, prefix="GPT: ")
    p.add_argument("--seed", type=SEED, help="weights (and the document) as microgpt draws them for the GPT (42); "
                                             "train.mlp's initial weights for the MLP (0)")
    for name, what in (("rtol", "microjax vs jax, relative"), ("atol", "microjax vs jax, absolute"),
                       ("fd_rtol", "jax vs finite differences, relative"),
                       ("fd_atol", "jax vs finite differences, absolute")):
        p.add_argument("--" + name.replace("_", "-"), type=number(float, 0, below=1), default=getattr(tol, name),
                       help=f"tolerance, {what} ({getattr(tol, name):g})")
    p.add_argument("--fd-step", type=number(float, above=0, high=MAX_FD_STEP), default=FD_STEP,
                   help=f"finite-difference step h ({FD_STEP:g})")
    p.add_argument("--fd-samples", type=number(int, 1, 10**9), default=FD_SAMPLES,
                   help=f"coordinates differenced per parameter, at most its size ({FD_SAMPLES}); --order 1")
    return p


def model_flags(args):
    """The model's settings given on the command line."""
    return {k: getattr(args, k) for k in MODEL_FIELDS if getattr(args, k) is not None}


def validate(args):
    """What the flags' own types cannot see: GPT flags with the MLP, and a width the heads do not divide."""
    gpt_flags = [f for f in (*MODEL_FIELDS, "data", "doc") if getattr(args, f) is not None]
    if args.model == "mlp" and gpt_flags:
        raise UserError(f"--{gpt_flags[0].replace('_', '-')} applies to --model gpt only")
    if args.model == "gpt":
        TrainConfig(**model_flags(args)).model(vocab_size=1)


def main(argv=None):
    args = build_parser().parse_args(argv)
    validate(args)
    tol = Tolerance(*(getattr(args, name) for name in Tolerance._fields))
    if args.model == "gpt":
        from .lib.data import load_docs, resolve_data_path

        seed = 42 if args.seed is None else args.seed
        problem = gpt_problem(load_docs(resolve_data_path(args.data)), seed, args.doc, **model_flags(args))
    else:
        seed = 0 if args.seed is None else args.seed
        problem = mlp_problem(seed)
    if args.order == 1:
        check = gradient_check(problem, args.fd_step, args.fd_samples, seed)
    else:
        check = hvp_check(problem, args.fd_step, seed)
    return 0 if print_check(check, tol) else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
