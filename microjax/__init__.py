"""microjax: the micrograd lesson's scalar autograd engine, written in JAX's functional style.

Pure Python; never imports jax. `grad(f)(x)` returns the gradient shaped like `x` and changes nothing.
The transforms compose as JAX's do: `grad(grad(f))`, `jvp(grad(f), ...)` (a Hessian-vector product),
`hessian(f)` = `jacfwd(jacrev(f))`, and `make_jaxpr(f)(x)` prints the traced graph in JAX's notation.
"""

from .draw import draw_dot, render
from .engine import Value, dot, exp, log, relu, sigmoid, sum, tanh
from .jaxpr import make_jaxpr
from .nn import init_mlp, layer, mlp, neuron, sgd, squared_error
from .transforms import grad, hessian, jacfwd, jacrev, jvp, tree_flatten, value_and_grad

__all__ = ["Value", "grad", "value_and_grad", "jvp", "jacfwd", "jacrev", "hessian", "make_jaxpr", "tree_flatten",
           "exp", "log", "tanh", "relu", "sigmoid", "dot", "sum", "draw_dot", "render", "init_mlp", "neuron", "layer",
           "mlp", "squared_error", "sgd"]
