"""microjax: the micrograd lesson's scalar autograd engine, grown into JAX in miniature.

Pure Python; never imports jax. `grad(f)(x)` returns the gradient shaped like `x` and changes nothing.
The transforms compose as JAX's do: `grad(grad(f))`, `jvp(grad(f), ...)` (a Hessian-vector product),
`vjp`, `linearize`, `hessian`; `make_jaxpr(f)(x)` prints f's program in JAX's notation; `jit(f)` traces
f once and runs the traced program after; `vmap(f)` runs f written for one example over a list of them.
Pytrees, `has_aux`, `custom_jvp`/`custom_vjp` and IEEE numbers follow JAX (see the README's list of
what stays different).
"""

from . import core, primitives  # noqa: F401  (primitives registers the table the operators are built from)
from . import tree_util
from .config import config, refresh as _refresh

_refresh()

from .core import ConcretizationTypeError, Tracer, TracerBoolConversionError, UnexpectedTracerError, Value  # noqa: E402
from .custom import custom_jvp, custom_vjp  # noqa: E402
from .draw import draw_dot, render  # noqa: E402
from .jaxpr import make_jaxpr  # noqa: E402
from .jit import jit  # noqa: E402
from .lax import (cond, cos, dot, exp, log, maximum, minimum, relu, sigmoid, sin, sqrt, stop_gradient, sum,  # noqa: E402
                  tanh, where)
from .nn import init_mlp, layer, mlp, neuron, sgd, squared_error  # noqa: E402
from .forward import hessian, jacfwd, jvp, linearize  # noqa: E402
from .transforms import grad, jacrev, value_and_grad, vjp  # noqa: E402
from .tree_util import tree_flatten, tree_leaves, tree_map, tree_structure, tree_unflatten  # noqa: E402
from .vmap import vmap  # noqa: E402

__all__ = ["Value", "Tracer", "grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "hessian",
           "jit", "vmap", "make_jaxpr", "custom_jvp", "custom_vjp", "stop_gradient", "where", "cond", "config",
           "tree_util", "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves", "tree_structure",
           "exp", "log", "tanh", "relu", "sigmoid", "sqrt", "sin", "cos", "maximum", "minimum", "dot", "sum",
           "ConcretizationTypeError", "TracerBoolConversionError", "UnexpectedTracerError",
           "draw_dot", "render", "init_mlp", "neuron", "layer", "mlp", "squared_error", "sgd"]
