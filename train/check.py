"""python -m train.check: the loss gradient three ways, per parameter, in float64.

microjax on the scalar twin (models/gpt_scalar.py, microjax/nn.py), `jax.grad` on the JAX model
(models/gpt.py, models/mlp.py), and finite differences of the JAX loss. `--order 2` checks
Hessian-vector products instead: microjax's jvp(grad) against JAX's, and against finite differences
of jax.grad. Exit status 0 when every figure is within tolerance, 1 when one is not.

The problems are built here (`gpt_problem`, `mlp_problem`); the comparison is train/gradcheck.py's
(`gradient_check`, `hvp_check`, `print_check`), importable from here as well.
"""

import random
import sys

import microjax as mj

from .cli import SEED, ArgumentParser, UserError, number, run as run_cli
from .gradcheck import FD_SAMPLES, FD_STEP, Problem, Tolerance, gradient_check, hvp_check, print_check
from .mlp import SIZES, XS, YS

MAX_FD_STEP = 1  # the weights are O(0.1-1): a step past that measures another function
# The scalar twin's graph grows as n_embd^2 n_layer a position. With 4 layers and a 15-letter name,
# --order 2 took 31 s and 1.2 GB at n_embd 32, 70 s and 4 GB at 64; the defaults take a second or two.
LIMITS = {"n_layer": 4, "n_embd": 32, "n_head": 32, "block_size": 32}


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
    for name, limit in LIMITS.items():
        p.add_argument("--" + name.replace("_", "-"), type=number(int, 1, limit), help="GPT: as train.gpt")
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
    """The GPTConfig fields given on the command line."""
    return {k: getattr(args, k) for k in LIMITS if getattr(args, k) is not None}


def validate(args):
    """What the flags' own types cannot see: GPT flags with the MLP, and a width the heads do not divide."""
    gpt_flags = [f for f in (*LIMITS, "data", "doc") if getattr(args, f) is not None]
    if args.model == "mlp" and gpt_flags:
        raise UserError(f"--{gpt_flags[0].replace('_', '-')} applies to --model gpt only")
    if args.model == "gpt":
        from models.gpt import GPTConfig

        try:
            GPTConfig(**model_flags(args))
        except ValueError as e:
            raise UserError(str(e)) from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    validate(args)
    tol = Tolerance(*(getattr(args, name) for name in Tolerance._fields))
    if args.model == "gpt":
        from .data import load_docs, resolve_data_path

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
