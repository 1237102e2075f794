"""custom_jvp and custom_vjp with JAX's decorator API, beside JAX's: the rule used in every mode and
differentiated again, and forward mode refused for custom_vjp as JAX refuses it."""

import math

import jax
import jax.numpy as jnp
import pytest

import microjax as mj

from .helpers import close


# custom_jvp and custom_vjp, JAX's decorator API ---------------------------------------------------
def _custom_pairs():
    @mj.custom_jvp
    def safe_log1p(x):  # a rule that JAX's docs use: the derivative written by hand
        return mj.log(1.0 + x)

    @safe_log1p.defjvp
    def safe_log1p_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return safe_log1p(x), t / (1.0 + x)

    @jax.custom_jvp
    def jsafe_log1p(x):
        return jnp.log1p(x)

    @jsafe_log1p.defjvp
    def jsafe_log1p_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return jsafe_log1p(x), t / (1.0 + x)

    @mj.custom_vjp
    def clip_gradient(x, y):  # the forward value x * y; the backward pass scaled and clipped
        return x * y

    clip_gradient.defvjp(lambda x, y: (x * y, (x, y)),
                         lambda res, g: (mj.minimum(g * res[1], 1.0), mj.maximum(g * res[0] * res[0], -1.0)))

    @jax.custom_vjp
    def jclip_gradient(x, y):
        return x * y

    jclip_gradient.defvjp(lambda x, y: (x * y, (x, y)),
                          lambda res, g: (jnp.minimum(g * res[1], 1.0), jnp.maximum(g * res[0] * res[0], -1.0)))
    return (safe_log1p, jsafe_log1p), (clip_gradient, jclip_gradient)


def test_custom_jvp_rule_is_used_in_every_mode_and_differentiated_again():
    (ours, theirs), _ = _custom_pairs()
    f = lambda x: ours(mj.sin(x) * x) * x  # noqa: E731
    jf = lambda x: theirs(jnp.sin(x) * x) * x  # noqa: E731
    x = 0.8
    close(mj.grad(f)(x), jax.grad(jf)(x))
    close(mj.grad(mj.grad(f))(x), jax.grad(jax.grad(jf))(x))
    close(mj.jvp(f, (x,), (1.0,)), jax.jvp(jf, (x,), (1.0,)))
    close(mj.jit(mj.grad(f))(x), jax.grad(jf)(x))
    close(mj.grad(mj.jit(f))(x), jax.grad(jf)(x))
    close(mj.hessian(f)(x), jax.hessian(jf)(x))
    close(mj.vmap(mj.grad(f))([x, 0.1]), jax.vmap(jax.grad(jf))(jnp.asarray([x, 0.1])))
    assert ours(1.0) == pytest.approx(math.log(2.0))  # on plain numbers: just the function


def test_custom_vjp_rule_is_used_in_reverse_mode_and_refused_in_forward_mode_as_in_jax():
    _, (ours, theirs) = _custom_pairs()
    f = lambda x, y: ours(x * 3.0, mj.tanh(y)) + x  # noqa: E731
    jf = lambda x, y: theirs(x * 3.0, jnp.tanh(y)) + x  # noqa: E731
    args = (0.9, -0.4)
    for g, jg in ((mj.grad(f, (0, 1)), jax.grad(jf, (0, 1))), (mj.jit(mj.grad(f, (0, 1))), jax.grad(jf, (0, 1))),
                  (mj.grad(mj.jit(f), (0, 1)), jax.grad(jf, (0, 1))),
                  (mj.grad(lambda x, y: mj.grad(f, 1)(x, y) * x, (0, 1)), jax.grad(lambda x, y: jax.grad(jf, 1)(x, y) * x, (0, 1)))):
        close(g(*args), jg(*args))
    for jvp in (lambda: mj.jvp(f, args, (1.0, 0.0)), lambda: jax.jvp(jf, args, (1.0, 0.0))):
        with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
            jvp()
