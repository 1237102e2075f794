"""The primitives: each one's forward value and its derivative rule, side by side, under JAX's names.

The lesson's recipe, in JAX's form. `mul_value(x, y)` is the forward value on floats; `mul_jvp_x(g, x,
y, out)` is how the output moves when x moves by g (here `g * y`), written exactly as JAX's own rule so
that a printed jaxpr shows JAX's equations. A rule is linear in g and uses ops that work on floats,
Values, Tracers and linear variables alike (a comparison is written with its operands in JAX's order,
so a staged one reads as JAX's): called with g = 1.0 on floats it is the local derivative
the first-order pass records; called with Values it is differentiable again (grad of grad); called
with a linear variable it records the equations that the reverse pass transposes.

Forward values follow IEEE arithmetic as JAX's float64 does: `exp(1000.)` is inf, `log(0.)` is -inf,
`0/0.` is nan. `microjax.config.update("debug_nans", True)` (and "debug_infs") makes the first op
that produces one raise instead, naming the op and its operands.
"""

import math
import operator

from . import core
from .lax import add_any, cos, div, integer_pow, log, power, select_n, sin

__all__ = ["defjvp", "deflinear"]


def defjvp(name, value, *rules):
    """Register a primitive from one rule per operand (None: not differentiable), as JAX's `ad.defjvp`:
    the output's tangent is the sum of each moving operand's rule."""

    def jvp(tangents, *operands_and_out):
        total = None
        for rule, t in zip(rules, tangents):
            if t is not None and rule is not None:
                c = rule(t, *operands_and_out)
                if not (type(c) is float and c == 0.0):
                    total = c if total is None else add_any(total, c)
        return total

    core.PRIMITIVES[name] = core.Primitive(name, value, jvp, rules=tuple(r or _zero_rule for r in rules))


def deflinear(name, value, jvp, constant=None, local=None):
    """Register a primitive whose tangent is the primitive itself applied to the tangents (add, sub, neg):
    its derivatives are constants."""
    core.PRIMITIVES[name] = core.Primitive(name, value, jvp, constant=constant, local=local)


def _zero_rule(g, *operands_and_out):
    return 0.0


# -- arithmetic -------------------------------------------------------------------------------------
def add_jvp(tangents, x, y, out):
    tx, ty = tangents
    return tx if ty is None else ty if tx is None else tx + ty


def sub_jvp(tangents, x, y, out):
    tx, ty = tangents
    return tx if ty is None else -ty if tx is None else tx - ty


def add_any_jvp(tangents, x, y, out):  # how JAX names summing tangents and cotangents
    tx, ty = tangents
    return tx if ty is None else ty if tx is None else add_any(tx, ty)


deflinear("add", operator.add, add_jvp, constant=(1.0, 1.0))
deflinear("sub", operator.sub, sub_jvp, constant=(1.0, -1.0))
deflinear("add_any", operator.add, add_any_jvp, constant=(1.0, 1.0))
deflinear("neg", operator.neg, lambda tangents, x, out: -tangents[0], constant=(-1.0,))


def mul_value(x, y):
    return x * y


def mul_jvp_x(g, x, y, out):
    return g * y


def mul_jvp_y(g, x, y, out):
    return x * g


defjvp("mul", mul_value, mul_jvp_x, mul_jvp_y)


def div_value(x, y):
    try:
        return x / y
    except ZeroDivisionError:  # IEEE: x / 0 is +-inf, 0 / 0 is nan
        return math.nan if x == 0 or x != x else math.copysign(math.inf, x) * math.copysign(1.0, y)


def div_jvp_x(g, x, y, out):
    return div(g, y)


def div_jvp_y(g, x, y, out):
    return (-g * x) * integer_pow(y, -2)


defjvp("div", div_value, div_jvp_x, div_jvp_y)


def integer_pow_value(x, y):
    """x ** y for an int y by repeated squaring, as JAX computes it (never an OverflowError: inf)."""
    if y == 2:
        return x * x
    n, acc = abs(y), None
    while n:
        if n & 1:
            acc = x if acc is None else acc * x
        n >>= 1
        if n:
            x = x * x
    return 1.0 if acc is None else div_value(1.0, acc) if y < 0 else acc


def integer_pow_jvp(g, x, y, out):
    if y == 0:
        return 0.0
    if y == 1:
        return g
    if y == 2:
        return g * (2.0 * x)
    return g * (float(y) * integer_pow(x, y - 1))


defjvp("integer_pow", integer_pow_value, integer_pow_jvp, None)  # y is a constant int, not an operand


def _odd_integer(y):
    return y == int(y) and int(y) % 2 == 1 if math.isfinite(y) else False


def pow_value(x, y):
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and _odd_integer(y) else math.inf
    except ValueError:  # zero to a negative power (inf), a negative base to a fractional one (nan)
        return (math.copysign(math.inf, x) if _odd_integer(y) else math.inf) if x == 0 else math.nan


def pow_jvp_x(g, x, y, out):
    return g * (y * power(x, y - 1.0))


def pow_jvp_y(g, x, y, out):  # JAX's: log of x with x == 0 replaced by 1, so the derivative there is 0
    return g * (log(select_n(x == 0.0, x, 1.0)) * out)


defjvp("pow", pow_value, pow_jvp_x, pow_jvp_y)


# -- functions --------------------------------------------------------------------------------------
def exp_value(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def exp_jvp(g, x, out):
    return g * out


def log_value(x):
    return math.log(x) if x > 0 else -math.inf if x == 0 else math.nan


def log_jvp(g, x, out):
    return div(g, x)


def tanh_value(x):
    return math.tanh(x)


def tanh_jvp(g, x, out):  # JAX's form, exact near |tanh| = 1
    return (g + g * out) * (1.0 - out)


def logistic_value(x):  # sigmoid, without overflow on either side
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def logistic_jvp(g, x, out):
    return g * (out * (1.0 - out))


def sqrt_value(x):
    return math.sqrt(x) if x >= 0 else math.nan


def sqrt_jvp(g, x, out):
    return g * div(0.5, out)


def sin_value(x):
    try:
        return math.sin(x)
    except ValueError:  # sin(inf)
        return math.nan


def sin_jvp(g, x, out):
    return g * cos(x)


def cos_value(x):
    try:
        return math.cos(x)
    except ValueError:
        return math.nan


def cos_jvp(g, x, out):
    return -(g * sin(x))


def abs_jvp(g, x, out):
    return select_n(x >= 0.0, -g, g)


def relu_value(x):  # max(x, 0.0), nan kept as JAX's max keeps it
    return x if not x <= 0.0 else 0.0


def relu_jvp(g, x, out):  # jax.nn.relu's own rule: derivative 0 at 0
    return select_n(x > 0.0, 0.0, g)


for _name, _value, _rule in (("exp", exp_value, exp_jvp), ("log", log_value, log_jvp), ("tanh", tanh_value, tanh_jvp),
                             ("logistic", logistic_value, logistic_jvp), ("sqrt", sqrt_value, sqrt_jvp),
                             ("sin", sin_value, sin_jvp), ("cos", cos_value, cos_jvp), ("abs", abs, abs_jvp),
                             ("relu", relu_value, relu_jvp)):
    defjvp(_name, _value, _rule)


def max_value(x, y):
    return math.nan if x != x or y != y else x if x >= y else y


def min_value(x, y):
    return math.nan if x != x or y != y else x if x <= y else y


def _balanced_eq(x, z, y):  # JAX's: 1 where x is the result, 0.5 on a tie, else 0
    return div(select_n(x == z, 0.0, 1.0), select_n(y == z, 1.0, 2.0))


def max_jvp_x(g, x, y, out):
    return g * _balanced_eq(x, out, y)


def max_jvp_y(g, x, y, out):
    return g * _balanced_eq(y, out, x)


defjvp("max", max_value, max_jvp_x, max_jvp_y)
defjvp("min", min_value, max_jvp_x, max_jvp_y)  # the same rule: which operand the result is


# -- selection, comparisons, identities ------------------------------------------------------------
def select_n_value(p, *cases):
    return cases[p]


def select_n_jvp(tangents, p, *cases_and_out):
    ts = tangents[1:]
    if all(t is None for t in ts):
        return None
    return select_n(p, *(0.0 if t is None else t for t in ts))


deflinear("select_n", select_n_value, select_n_jvp)

for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    core.PRIMITIVES[_name] = core.Primitive(_name, getattr(operator, _name), lambda tangents, *a: None, boolean=True)

deflinear("stop_gradient", lambda x: x, lambda tangents, x, out: None, constant=(0.0,))
deflinear("copy", lambda x: x, lambda tangents, x, out: tangents[0], constant=(1.0,))  # a nested transform's input


# -- n-ary nodes for the first-order pass (one node for a whole sum; never staged or nested) --------
def dot_local(datas, out):
    n = len(datas) // 2
    return datas[n:] + datas[:n]  # d/dx_i = y_i, d/dy_i = x_i


def dot_jvp(tangents, *operands_and_out):
    n = len(tangents) // 2
    xs, ys = operands_and_out[:n], operands_and_out[n:2 * n]
    total = None
    for tx, ty, x, y in zip(tangents[:n], tangents[n:], xs, ys):
        for c in (None if tx is None else tx * y, None if ty is None else x * ty):
            if c is not None:
                total = c if total is None else add_any(total, c)
    return total


def sum_jvp(tangents, *operands_and_out):
    total = None
    for t in tangents:
        if t is not None:
            total = t if total is None else add_any(total, t)
    return total


deflinear("dot", None, dot_jvp, local=dot_local)
deflinear("sum", None, sum_jvp, local=lambda datas, out: (1.0,) * len(datas))
