"""The run's keys: with rng "jax" everything random is drawn from subkeys of one root key, the seed's."""

import jax

# one subkey of the root key each; new purposes go last, so that the others keep their keys
KEY_PURPOSES = ("shuffle", "init", "batches", "sample", "dropout", "eval")


def subkey(key, purpose, *more):
    """The key for one purpose (KEY_PURPOSES), further folded with e.g. an epoch or step number."""
    key = jax.random.fold_in(key, KEY_PURPOSES.index(purpose))
    for m in more:
        key = jax.random.fold_in(key, m)
    return key
