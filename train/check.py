"""python -m train.check: the loss gradient three ways, per parameter, in float64.

microjax on the scalar twin (models/gpt_scalar.py, microjax/nn.py), `jax.grad` on the JAX model
(models/gpt.py, models/mlp.py), and central finite differences of the JAX loss. `--order 2` checks
Hessian-vector products instead: microjax's jvp(grad) against JAX's, and against central differences
of jax.grad. Exit status 0 when every figure is within tolerance, 1 when one is not.

The problems are built here (`gpt_problem`, `mlp_problem`); the comparison is train/gradcheck.py's
(`gradient_check`, `hvp_check`, `print_check`), importable from here as well.
"""

import argparse
import random
import sys

import microjax as mj

from .cli import UserError, run as run_cli
from .gradcheck import FD_SAMPLES, FD_STEP, Problem, Tolerance, gradient_check, hvp_check, print_check
from .mlp import SIZES, XS, YS

MAX_FD_STEP = 0.1  # beyond this a difference says nothing about a derivative
LIMITS = {"n_layer": 8, "n_embd": 128, "n_head": 128, "block_size": 256}  # the scalar twin must finish


def gpt_problem(docs, seed=42, doc=None, **model):
    """microgpt's first step: `seed` shuffles the documents and draws the weights as microgpt.py does;
    the document is the first after shuffling (step 1), or `doc`. `model`: GPTConfig fields but vocab_size."""
    import jax.numpy as jnp

    from models import gpt, gpt_scalar

    from .data import Tokenizer, encode_docs

    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)
    tok = Tokenizer.from_docs(docs)
    try:
        config = gpt.GPTConfig(tok.vocab_size, **model)
    except ValueError as e:
        raise UserError(str(e)) from None
    params = gpt_scalar.init(rng, config)
    doc = docs[0] if doc is None else doc
    rows, n, _ = encode_docs([doc], tok, config.block_size)
    tokens, targets = rows[0, :n[0]].tolist(), rows[0, 1 : n[0] + 1].tolist()
    size = (f"{config.n_layer} layer{'s' * (config.n_layer > 1)}, n_embd {config.n_embd}, {config.n_head} heads, "
            f"{gpt.num_params(config):,} parameters")
    return Problem(f"GPT ({size}), the loss of {doc!r} over {len(tokens)} positions", params,
                   lambda p: gpt_scalar.loss(p, tokens, targets, config),
                   lambda p: gpt.loss(p, jnp.asarray(tokens), jnp.asarray(targets), jnp.ones(len(tokens)), config))


def mlp_problem(seed=0):
    """The lesson's 3-4-4-1 tanh MLP (train.mlp's initial weights for `seed`) and its four examples."""
    from models import mlp as jmlp

    layers = mj.init_mlp(len(XS[0]), SIZES, seed=seed)
    params = {f"layer{i}.{k}": layer[k] for i, layer in enumerate(layers) for k in ("w", "b")}

    def tree(p):  # {"layer0.w": ..} -> [{"w": .., "b": ..}, ..], the structure both models take
        return [{k: p[f"layer{i}.{k}"] for k in ("w", "b")} for i in range(len(layers))]

    def jax_loss(p):
        import jax.numpy as jnp

        return jmlp.squared_error(tree(p), jnp.asarray(XS), jnp.asarray(YS))

    return Problem(f"MLP 3-{'-'.join(map(str, SIZES))}, squared error on the 4 examples", params,
                   lambda p: mj.squared_error(tree(p), XS, YS), jax_loss)

def build_parser():
    tol = Tolerance()
    p = argparse.ArgumentParser(prog="python -m train.check", description=__doc__.split("\n\n")[0],
                                epilog=f"Each figure passes when it is <= atol + rtol * (the parameter's largest "
                                       f"|jax| value). Defaults: microjax vs jax --rtol {tol.rtol:g} --atol "
                                       f"{tol.atol:g} (exact methods, apart by float64 rounding, ~1e-15); jax vs "
                                       f"finite differences --fd-rtol {tol.fd_rtol:g} --fd-atol {tol.fd_atol:g} "
                                       f"(central differences at h = {FD_STEP:g} agree to ~1e-10; the figure is "
                                       f"the smallest error at h, h / 10 and h / 100, so that a ReLU kink within h "
                                       f"of the point does not count).")
    p.add_argument("--model", choices=("gpt", "mlp"), default="gpt",
                   help="microgpt's GPT (default) or the lesson's 3-4-4-1 MLP on its 4 examples")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="1: the gradient (default); 2: Hessian-vector products along a random direction")
    p.add_argument("--data", help="GPT: text file, one document per line (default: $MICROJAX_DATA, else names.txt)")
    p.add_argument("--doc", help="GPT: the document whose loss is differentiated (default: microgpt's first)")
    for name, limit in LIMITS.items():
        p.add_argument("--" + name.replace("_", "-"), type=int, help=f"GPT: as train.gpt (1 to {limit})")
    p.add_argument("--seed", type=int, help="weights (and the document) as microgpt draws them for the GPT (42); "
                                            "train.mlp's initial weights for the MLP (0)")
    for name, what in (("rtol", "microjax vs jax, relative"), ("atol", "microjax vs jax, absolute"),
                       ("fd_rtol", "jax vs finite differences, relative"),
                       ("fd_atol", "jax vs finite differences, absolute")):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(tol, name),
                       help=f"tolerance, {what} ({getattr(tol, name):g}); 0 <= value < 1")
    p.add_argument("--fd-step", type=float, default=FD_STEP, help=f"finite-difference step h ({FD_STEP:g})")
    p.add_argument("--fd-samples", type=int, default=FD_SAMPLES,
                   help=f"coordinates differenced per parameter, at most its size ({FD_SAMPLES}); --order 1")
    return p


def validate(args):
    """Refuse what cannot be used, before any work; returns the Tolerance."""
    gpt_flags = [f for f in (*LIMITS, "data", "doc") if getattr(args, f) is not None]
    if args.model == "mlp" and gpt_flags:
        raise UserError(f"--{gpt_flags[0].replace('_', '-')} applies to --model gpt only")
    for name, limit in LIMITS.items():
        value = getattr(args, name)
        if value is not None and not 1 <= value <= limit:
            raise UserError(f"--{name.replace('_', '-')} must be between 1 and {limit}, got {value}")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    tol = Tolerance(*(getattr(args, name) for name in Tolerance._fields))
    for name, value in tol._asdict().items():
        if not 0 <= value < 1:  # also refuses NaN; a relative tolerance of 1 or more accepts anything
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 and < 1, got {value}")
    if not 0 < args.fd_step <= MAX_FD_STEP:
        raise UserError(f"--fd-step must be > 0 and <= {MAX_FD_STEP}, got {args.fd_step}")
    if args.fd_samples < 1:
        raise UserError(f"--fd-samples must be >= 1, got {args.fd_samples}")
    if args.model == "gpt":
        from models.gpt import GPTConfig

        try:
            GPTConfig(**{k: getattr(args, k) for k in LIMITS if getattr(args, k) is not None})
        except ValueError as e:
            raise UserError(str(e)) from None
    return tol


def main(argv=None):
    args = build_parser().parse_args(argv)
    tol = validate(args)
    if args.model == "gpt":
        from .data import load_docs, resolve_data_path

        model = {k: getattr(args, k) for k in LIMITS if getattr(args, k) is not None}
        seed = 42 if args.seed is None else args.seed
        problem = gpt_problem(load_docs(resolve_data_path(args.data)), seed, args.doc, **model)
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
