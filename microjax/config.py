"""`microjax.config.update("debug_nans", True)`: JAX's switches for finding where a nan or an inf starts.

Off (the default), numbers follow IEEE arithmetic as JAX's float64 does (`log(0.)` is -inf, `0/0.` is
nan). On, the first op whose result is a nan (or, with "debug_infs", an inf) raises FloatingPointError
naming the op and its operands, as JAX's do. Switching swaps the forward functions the operators run,
so the checks cost nothing while they are off.
"""

import math

from . import core
from .operators import install_operators

__all__ = ["config"]


class Config:
    def __init__(self):
        self.debug_nans = False
        self.debug_infs = False

    def update(self, name, value):
        """Set "debug_nans" or "debug_infs" (JAX's names, with or without its "jax_" prefix)."""
        key = name.removeprefix("jax_")
        if key not in ("debug_nans", "debug_infs"):
            raise AttributeError(f"Unrecognized config option: {name} (microjax has debug_nans and debug_infs)")
        setattr(self, key, bool(value))
        refresh()

    @property
    def checking(self):
        return self.debug_nans or self.debug_infs


config = Config()
_SKIP = ("copy", "stop_gradient", "select_n")  # they pass a value on; the op that made it is the one to name


def _checked(name, value):
    def run(*operands):
        out = value(*operands)
        if out != out and config.debug_nans or config.debug_infs and (out == math.inf or out == -math.inf):
            shown = ", ".join(map(repr, operands))
            raise FloatingPointError(f"invalid value ({out}) encountered in {name}: {name}({shown}) = {out}")
        return out

    return run


def refresh():
    """Put the forward functions in force (checked or not) into core.state.run, and rebuild the operators."""
    for name, prim in core.PRIMITIVES.items():
        if prim.value is not None:
            checked = config.checking and not prim.boolean and name not in _SKIP
            core.state.run[name] = _checked(name, prim.value) if checked else prim.value
    install_operators()
