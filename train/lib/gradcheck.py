"""The loss gradient (or a Hessian-vector product) three ways, per parameter, in float64.

microjax on a scalar twin, JAX on the array model, and finite differences of the JAX loss:
`gradient_check` and `hvp_check` compute the figures of a `Problem` (one loss written twice over the
same named parameters), `print_check` prints the table, the verdict and the timings. The problems
(microgpt's GPT, the lesson's MLP) are built in problems.py; `python -m train.check` is the command.
"""

import sys
import time
from typing import Callable, NamedTuple

import microjax as mj

FD_STEP = 1e-5  # near eps ** (1/3), where central differences' rounding and truncation errors meet
FD_SAMPLES = 64  # coordinates per parameter: the largest |gradient| and the rest at random


class Tolerance(NamedTuple):
    """Each figure passes when it is <= atol + rtol * (the parameter's largest |JAX value|)."""

    rtol: float = 1e-9  # microjax vs JAX: two exact methods, apart only by float64 rounding (~1e-15)
    atol: float = 1e-12
    fd_rtol: float = 1e-6  # JAX vs finite differences: h = 1e-5 leaves ~1e-10 of rounding and h^2 terms
    fd_atol: float = 1e-9


class Problem(NamedTuple):
    """One loss written twice over the same named parameters: on microjax's scalars and in JAX."""

    title: str
    params: dict  # name -> nested lists of floats; JAX gets float64 arrays of the same numbers
    scalar_loss: Callable  # {name: nested lists of Values} -> Value
    jax_loss: Callable  # {name: array} -> scalar


class Row(NamedTuple):
    """One parameter's figures: the largest errors over its entries, and what they are relative to."""

    name: str
    shape: tuple
    scale: float  # largest |JAX value| of this parameter
    exact: float  # largest |microjax - JAX|
    fd: float  # largest |JAX - finite difference| over the coordinates differenced
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
    """|exact - the derivative of f at x along `direction`| by finite differences: the smallest error of
    nine estimates, each off by O(s^2) from the Taylor terms and O(eps / s) from rounding (~1e-10 at
    s = 1e-5): for s = h, h / 10 and h / 100, the central (f(x + s) - f(x - s)) / 2s and the one-sided
    (-3 f(x) + 4 f(x + s) - f(x + 2s)) / 2s and its mirror image.

    Where a ReLU kink lies within 2s of x, a formula reaching over it is off by O(1), but the one-sided
    formula on the other side is not; only kinks within h / 100 on both sides spoil all nine. A wrong
    derivative is wrong against all nine.
    """
    import jax
    import jax.numpy as jnp

    def column(v, like):  # (n,) -> (n, 1, 1, ...) to broadcast against a stack of `like`
        return v.reshape(-1, *[1] * jnp.ndim(like))

    s = jnp.asarray([h, h / 10, h / 100])
    at = jnp.concatenate([jnp.zeros(1), s, -s, 2 * s, -2 * s])
    values = jax.vmap(f)(x + column(at, x) * direction)  # 13 points in one call
    f0, plus, minus, plus2, minus2 = values[0], values[1:4], values[4:7], values[7:10], values[10:13]
    two_s = 2 * column(s, exact)
    estimates = jnp.concatenate([(plus - minus) / two_s, (4 * plus - 3 * f0 - plus2) / two_s,
                                 (3 * f0 - 4 * minus + minus2) / two_s])
    return jnp.min(jnp.abs(exact - estimates), axis=0)


def _rows(params, mj_out, jax_out, fd_errors):
    import numpy as np

    biggest = lambda a: float(np.max(np.abs(a), initial=0.0))  # noqa: E731
    return [Row(name, p.shape, biggest(jax_out[name]), biggest(np.asarray(mj_out[name]) - jax_out[name]),
                biggest(fd_errors[name]), np.size(fd_errors[name])) for name, p in params.items()]


def gradient_check(problem, fd_step=FD_STEP, fd_samples=FD_SAMPLES, seed=0):
    """The loss gradient by microjax, by jax.grad and by finite differences (`fd_samples` coordinates a
    parameter: its largest |gradient| and the rest drawn with `seed`). Turns on JAX's float64."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    params = _setup(problem)
    start = time.perf_counter()
    loss, mj_grads = mj.value_and_grad(problem.scalar_loss)(problem.params)
    t_mj = time.perf_counter() - start
    grads, t_compile, t_call = _timed(jax.jit(jax.grad(problem.jax_loss)), params)

    rng = np.random.default_rng(seed)
    flat, unflatten = ravel_pytree(params)  # JAX flattens a dict in sorted-key order
    flat_grads = ravel_pytree(grads)[0]
    offsets = dict(zip(sorted(params), np.cumsum([0] + [params[k].size for k in sorted(params)])))
    picks = {}  # indices into `flat`, per parameter
    for name in params:
        g = np.abs(np.asarray(grads[name])).ravel()
        rest = rng.permutation(np.delete(np.arange(g.size), np.argmax(g)))[: min(fd_samples, g.size) - 1]
        picks[name] = offsets[name] + np.concatenate([[np.argmax(g)], rest]).astype(np.int64)

    def one(i):
        e_i = jnp.zeros_like(flat).at[i].set(1.0)
        return _fd_error(lambda x: problem.jax_loss(unflatten(x)), flat, e_i, fd_step, flat_grads[i])

    start = time.perf_counter()
    index = np.concatenate(list(picks.values()))
    fd = np.asarray(jax.jit(lambda idx: jax.lax.map(one, idx, batch_size=64))(jnp.asarray(index)))
    t_fd = time.perf_counter() - start
    errors = dict(zip(picks, np.split(fd, np.cumsum([len(p) for p in picks.values()])[:-1])))
    seconds = {"microjax": t_mj, "jax_compile": t_compile, "jax_call": t_call, "fd": t_fd, "fd_evals": 13 * len(fd)}
    return Check(problem.title, 1, float(loss), _rows(params, mj_grads, grads, errors), seconds)


def hvp_check(problem, fd_step=FD_STEP, seed=0):
    """H v along a random normal direction v (drawn with `seed`): microjax's jvp(grad) against JAX's
    jvp(grad), and against finite differences of jax.grad along v. Turns on JAX's float64."""
    import jax
    import numpy as np
    from jax.flatten_util import ravel_pytree

    params = _setup(problem)
    rng = np.random.default_rng(seed)
    direction = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    start = time.perf_counter()
    tangent = {k: v.tolist() for k, v in direction.items()}
    _, mj_hvp = mj.jvp(mj.grad(problem.scalar_loss), (problem.params,), (tangent,))
    t_mj = time.perf_counter() - start
    grad = jax.grad(problem.jax_loss)
    hvp, t_compile, t_call = _timed(jax.jit(lambda p, v: jax.jvp(grad, (p,), (v,))[1]), params, direction)

    flat, unflatten = ravel_pytree(params)

    def flat_grad(x):
        return ravel_pytree(grad(unflatten(x)))[0]

    start = time.perf_counter()
    fd = jax.jit(lambda x, d, e: _fd_error(flat_grad, x, d, fd_step, e))(
        flat, ravel_pytree(direction)[0], ravel_pytree(hvp)[0])
    errors = {k: np.asarray(v) for k, v in unflatten(fd).items()}
    t_fd = time.perf_counter() - start
    seconds = {"microjax": t_mj, "jax_compile": t_compile, "jax_call": t_call, "fd": t_fd, "fd_evals": 13}
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
        f"compiling), then {_duration(s['jax_call'])} a call, {_ratio(s['microjax'] / s['jax_call'])} faster "
        f"than microjax | finite differences {s['fd_evals']:,} {('loss', 'gradient')[check.order - 1]} evaluations in "
        f"{_duration(s['fd'])}, compiling included")
    return not bad


def _duration(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else \
        f"{seconds * 1e6:.3g} µs"


def _ratio(x):
    return f"{x:,.0f}x" if x >= 10 else f"{x:.2g}x"
