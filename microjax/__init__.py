"""microjax: the micrograd lesson's scalar autograd engine, written in JAX's functional style.

Pure Python; never imports jax. `grad(f)(x)` returns the gradient shaped like `x` and changes nothing.
"""

from .draw import draw_dot, render
from .engine import Value, dot, exp, log, relu, sigmoid, sum, tanh
from .nn import init_mlp, layer, mlp, neuron, sgd, squared_error
from .transforms import grad, tree_flatten, value_and_grad

__all__ = ["Value", "grad", "value_and_grad", "tree_flatten", "exp", "log", "tanh", "relu", "sigmoid", "dot", "sum",
           "draw_dot", "render", "init_mlp", "neuron", "layer", "mlp", "squared_error", "sgd"]
