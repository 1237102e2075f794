"""python -m train.check: the loss gradient three ways, per parameter, in float64.

microjax on the scalar twin (models/gpt_scalar.py, microjax/nn.py), `jax.grad` on the JAX model
(models/gpt.py, models/mlp.py), and central finite differences of the JAX loss. `--order 2` checks
Hessian-vector products instead: microjax's jvp(grad) against JAX's, and against central differences
of jax.grad. Exit status 0 when every figure is within tolerance, 1 when one is not.
"""

import argparse
import math
import random
import sys
import time
from typing import Callable, NamedTuple

import microjax as mj

from .cli import UserError, run as run_cli
from .mlp import SIZES, XS, YS

FD_STEP = 1e-5  # near eps ** (1/3), where central differences' rounding and truncation errors meet
FD_SAMPLES = 64  # coordinates per parameter: the largest |gradient| and the rest at random
MAX_FD_STEP = 0.1  # beyond this a difference says nothing about a derivative
LIMITS = {"n_layer": 8, "n_embd": 128, "n_head": 128, "block_size": 256}  # the scalar twin must finish


class Tolerance(NamedTuple):
    """Each figure passes when it is <= atol + rtol * (the parameter's largest |JAX value|)."""

    rtol: float = 1e-9  # microjax vs JAX: two exact methods, apart only by float64 rounding (~1e-15)
    atol: float = 1e-12
    fd_rtol: float = 1e-6  # JAX vs central differences: h = 1e-5 leaves ~1e-10 of rounding and h^2 terms
    fd_atol: float = 1e-9


class Problem(NamedTuple):
    """One loss written twice over the same named parameters: on microjax's scalars and in JAX."""

    title: str
    params: dict  # name -> nested lists of floats; JAX gets float64 arrays of the same numbers
    scalar_loss: Callable  # {name: nested lists of Values} -> Value
    jax_loss: Callable  # {name: array} -> scalar


class Row(NamedTuple):
    name: str
    shape: tuple
    scale: float  # largest |JAX value| of this parameter
    exact: float  # largest |microjax - JAX|
    fd: float  # largest |JAX - central difference| over the coordinates differenced
    fd_coords: int

    def ok(self, tol):
        return (self.exact <= tol.atol + tol.rtol * self.scale) and (self.fd <= tol.fd_atol + tol.fd_rtol * self.scale)


class Check(NamedTuple):
    """What `gradient_check` and `hvp_check` return: the rows, the loss, and seconds per method."""

    title: str
    order: int
    loss: float
    rows: list
    seconds: dict  # microjax, jax_compile, jax_call, fd; and fd_evals, the loss (or gradient) evaluations


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
    size = f"{config.n_layer} layer(s), n_embd {config.n_embd}, {config.n_head} heads, {gpt.num_params(config):,} parameters"
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


def _setup(problem):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # every figure here is float64
    return {k: jnp.asarray(v, jnp.float64) for k, v in problem.params.items()}


def _timed(fn, *args, calls=10):
    """(result, seconds of the first call, which compiles, median seconds of the next `calls`)."""
    import jax

    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return out, first, sorted(times)[calls // 2]


def _fd_error(f, x, direction, h, exact):
    """|exact - (f(x + s d) - f(x - s d)) / 2s|, the smallest of the errors at s = h, h / 10 and h / 100.

    A central difference is off by O(s^2) from the Taylor terms and O(eps / s) from rounding (~1e-10 at
    s = 1e-5, ~1e-8 at 1e-7), but by O(1) where x +- s d straddles a ReLU kink. All three steps straddle
    one only when it lies within h / 100 of x, so the smallest error is the derivative's rather than the
    kink's; a wrong derivative is wrong against all three.
    """
    import jax.numpy as jnp

    errors = [jnp.abs(exact - (f(x + s * direction) - f(x - s * direction)) / (2 * s)) for s in (h, h / 10, h / 100)]
    return jnp.minimum(jnp.minimum(*errors[:2]), errors[2])


def _flatten(tree):
    """(one vector of every leaf in the dict's own order, its inverse, each leaf's offset in it)."""
    import jax.numpy as jnp
    import numpy as np

    offsets = np.cumsum([0] + [v.size for v in tree.values()])
    flat = jnp.concatenate([v.ravel() for v in tree.values()])

    def unflatten(x):
        return {k: x[a:b].reshape(v.shape) for (k, v), a, b in zip(tree.items(), offsets, offsets[1:])}

    return flat, unflatten, offsets


def _rows(params, mj_out, jax_out, fd_errors):
    import numpy as np

    biggest = lambda a: float(np.max(np.abs(a), initial=0.0))  # noqa: E731
    return [Row(name, p.shape, biggest(jax_out[name]), biggest(np.asarray(mj_out[name]) - jax_out[name]),
                biggest(fd_errors[name]), np.size(fd_errors[name])) for name, p in params.items()]


def gradient_check(problem, fd_step=FD_STEP, fd_samples=FD_SAMPLES, seed=0):
    """The loss gradient by microjax, by jax.grad and by central differences (`fd_samples` coordinates a
    parameter: its largest |gradient| and the rest drawn with `seed`). Turns on JAX's float64."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    params = _setup(problem)
    start = time.perf_counter()
    loss, mj_grads = mj.value_and_grad(problem.scalar_loss)(problem.params)
    t_mj = time.perf_counter() - start
    grads, t_compile, t_call = _timed(jax.jit(jax.grad(problem.jax_loss)), params)
    grads = {k: grads[k] for k in params}  # JAX returns dicts in sorted order; keep the model's

    rng = np.random.default_rng(seed)
    flat, unflatten, offsets = _flatten(params)
    flat_grads = _flatten(grads)[0]
    picks = []  # indices into `flat`, per parameter
    for g, offset in zip(grads.values(), offsets):
        g = np.abs(np.asarray(g)).ravel()
        rest = rng.permutation(np.delete(np.arange(g.size), np.argmax(g)))[: min(fd_samples, g.size) - 1]
        picks.append(offset + np.concatenate([[np.argmax(g)], rest]).astype(np.int64))

    def one(i):
        e_i = jnp.zeros_like(flat).at[i].set(1.0)
        return _fd_error(lambda x: problem.jax_loss(unflatten(x)), flat, e_i, fd_step, flat_grads[i])

    start = time.perf_counter()
    fd = np.asarray(jax.jit(lambda idx: jax.lax.map(one, idx, batch_size=64))(jnp.asarray(np.concatenate(picks))))
    t_fd = time.perf_counter() - start
    errors = dict(zip(params, np.split(fd, np.cumsum([len(p) for p in picks])[:-1])))
    seconds = {"microjax": t_mj, "jax_compile": t_compile, "jax_call": t_call, "fd": t_fd, "fd_evals": 6 * len(fd)}
    return Check(problem.title, 1, float(loss), _rows(params, mj_grads, grads, errors), seconds)


def hvp_check(problem, fd_step=FD_STEP, seed=0):
    """H v along a random normal direction v (drawn with `seed`): microjax's jvp(grad) against JAX's
    jvp(grad), and against central differences of jax.grad along v. Turns on JAX's float64."""
    import jax
    import numpy as np

    params = _setup(problem)
    rng = np.random.default_rng(seed)
    direction = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    start = time.perf_counter()
    _, mj_hvp = mj.jvp(mj.grad(problem.scalar_loss), (problem.params,), ({k: v.tolist() for k, v in direction.items()},))
    t_mj = time.perf_counter() - start
    grad = jax.grad(problem.jax_loss)
    hvp, t_compile, t_call = _timed(jax.jit(lambda p, v: jax.jvp(grad, (p,), (v,))[1]), params, direction)
    hvp = {k: hvp[k] for k in params}

    flat, unflatten, _ = _flatten(params)
    start = time.perf_counter()
    fd = jax.jit(lambda x, d, e: unflatten(_fd_error(lambda y: _flatten(grad(unflatten(y)))[0], x, d, fd_step, e)))(
        flat, _flatten(direction)[0], _flatten(hvp)[0])
    errors = {k: np.asarray(v) for k, v in fd.items()}
    t_fd = time.perf_counter() - start
    seconds = {"microjax": t_mj, "jax_compile": t_compile, "jax_call": t_call, "fd": t_fd, "fd_evals": 6}
    return Check(problem.title, 2, float(problem.jax_loss(params)), _rows(params, mj_hvp, hvp, errors), seconds)


def print_check(check, tol=Tolerance(), out=None):
    """Print the table, the verdict and the timing line; True when every row is within `tol`."""
    what = "gradient" if check.order == 1 else "Hessian-vector product along a random direction"
    say = lambda line="": print(line, file=out or sys.stdout)  # noqa: E731
    say(f"{check.title}: loss {check.loss:.12f}; the {what}, float64")
    say(f"{'parameter':<16} {'shape':<10} {'|microjax - jax|':>16} {'relative':>9} {'|jax - fd|':>11} "
        f"{'relative':>9} {'fd coords':>9}")
    for r in check.rows:
        rel = (lambda e: e / r.scale if r.scale else 0.0)
        say(f"{r.name:<16} {str(r.shape):<10} {r.exact:16.1e} {rel(r.exact):9.1e} {r.fd:11.1e} {rel(r.fd):9.1e} "
            f"{r.fd_coords:>9}{'' if r.ok(tol) else '  <- out of tolerance'}")
    bad = [r.name for r in check.rows if not r.ok(tol)]
    limits = (f"microjax vs jax: rtol {tol.rtol:g}, atol {tol.atol:g}; "
              f"jax vs finite differences: rtol {tol.fd_rtol:g}, atol {tol.fd_atol:g}")
    say(f"FAIL: {len(bad)} of {len(check.rows)} parameters out of tolerance ({', '.join(bad)}); {limits}" if bad
        else f"PASS: all {len(check.rows)} parameters within tolerance ({limits})")
    s = check.seconds
    say(f"time: microjax {_duration(s['microjax'])} | jax {_duration(s['jax_compile'])} the first call (tracing and "
        f"compiling), then {_duration(s['jax_call'])} a call, {s['microjax'] / s['jax_call']:,.0f}x faster than "
        f"microjax | finite differences {s['fd_evals']:,} {('loss', 'gradient')[check.order - 1]} evaluations in {_duration(s['fd'])}, compiling included")
    return not bad


def _duration(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else \
        f"{seconds * 1e6:.3g} µs"


def build_parser():
    tol = Tolerance()
    p = argparse.ArgumentParser(prog="python -m train.check", description=__doc__.split("\n\n")[0],
                                epilog=f"Each figure passes when it is <= atol + rtol * (the parameter's largest "
                                       f"|jax| value). Defaults: microjax vs jax --rtol {tol.rtol:g} --atol "
                                       f"{tol.atol:g} (exact methods, apart by float64 rounding, ~1e-15); jax vs "
                                       f"finite differences --fd-rtol {tol.fd_rtol:g} --fd-atol {tol.fd_atol:g} "
                                       f"(central differences at h = {FD_STEP:g} agree to ~1e-10; the figure is the smallest error at h, h / 10 "
                                       f"and h / 100, so that a ReLU kink within h of the point does not count).")
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
    for name in tol._fields:
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(tol, name),
                       help=f"({getattr(tol, name):g}), 0 <= value < 1")
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
