"""The lesson's tanh MLP in JAX: `init(key, sizes)` and a batched, jittable `apply(params, x)`.

Its scalar twin is `microjax.nn`: the same parameter structure, a list of layers
`{"w": (nout, nin), "b": (nout,)}`, with arrays here where microjax has nested lists.
"""

import jax
import jax.numpy as jnp


def init(key, sizes, dtype=jnp.float32):
    """Weights and biases uniform in [-1, 1] for layer sizes like [3, 4, 4, 1]."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        params.append({"w": jax.random.uniform(kw, (n_out, n_in), dtype, -1.0, 1.0),
                       "b": jax.random.uniform(kb, (n_out,), dtype, -1.0, 1.0)})
    return params


def apply(params, x):
    """tanh(W @ x + b) layer after layer; x is (..., nin), the result (..., nout)."""
    for p in params:
        x = jnp.tanh(x @ p["w"].T + p["b"])
    return x


def squared_error(params, xs, ys):
    """The lesson's loss: the sum over examples of (prediction - target)^2; ys is (N,) or (N, nout)."""
    pred = apply(params, xs)
    return jnp.sum((pred.reshape(jnp.shape(ys)) - ys) ** 2)


def from_microjax(params, dtype=None):
    """microjax.nn parameters (nested lists) -> JAX parameters, the same numbers."""
    return [{"w": jnp.asarray(p["w"], dtype), "b": jnp.asarray(p["b"], dtype)} for p in params]


def to_microjax(params):
    """JAX parameters -> microjax.nn parameters as nested lists of Python floats."""
    return [{"w": jax.device_get(p["w"]).tolist(), "b": jax.device_get(p["b"]).tolist()} for p in params]
