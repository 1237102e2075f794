"""`custom_jvp` and `custom_vjp`: a function whose derivative is given by hand, with JAX's decorator API.

    @custom_jvp                          @custom_vjp
    def f(x): ...                        def f(x): ...
    @f.defjvp                            f.defvjp(f_fwd, f_bwd)   # f_fwd(x) -> (out, residuals)
    def f_jvp(primals, tangents):        #                          f_bwd(residuals, ct) -> (ct_x,)
        return f(*primals), tangent_out

Each output leaf of f becomes one node whose value is f's (computed with the derivative stopped) and
whose derivative is the rule's: the jvp rule, called on the nodes (so it is differentiated again for
higher orders), or f_bwd, transposed; on a first-order pass, the floats the rule gives at the point.
"""

import functools

from . import core, linear
from .core import Tracer, Value, state
from .lax import _SPECIAL, stop_gradient
from .linear import Lin
from .tree_util import tree_flatten

__all__ = ["custom_jvp", "custom_vjp"]


class _Rule:
    """What a custom node carries, as a constant operand: the rule, and the trees of f's inputs and outputs."""

    def __init__(self, op, fun, rule, in_tree, out_tree, res_tree=None):
        self.op, self.rule, self.in_tree, self.out_tree, self.res_tree = op, rule, in_tree, out_tree, res_tree
        self.name, self.n_in = getattr(fun, "__name__", "f"), in_tree.num_leaves

    def __repr__(self):
        return f"{self.op}[{self.name}]"

    def jacobian(self, inputs, res):
        """d(output j)/d(input k) as floats, [j][k], from the rule at the inputs' values."""
        xs, m = [x.data if isinstance(x, Value) else x for x in inputs], self.out_tree.num_leaves
        jac = [[0.0] * len(inputs) for _ in range(m)]
        if self.op == "custom_jvp_call":
            for k, x in enumerate(inputs):
                if type(x) is Value:
                    column = self.tangent(xs, [1.0 if i == k else 0.0 for i in range(len(xs))])
                    for j in range(m):
                        jac[j][k] = column[j]
        else:
            res = [r.data if isinstance(r, Value) else r for r in res]
            for j in range(m):
                jac[j] = self.cotangent(j, 1.0, res)
        return jac

    def tangent(self, primals, tangents):
        """The output's tangent leaves from the user's jvp rule (zeros where a tangent is None)."""
        zero = Lin("zero", ()) if any(type(t) is Lin for t in tangents) else 0.0
        ts = [zero if t is None else t for t in tangents]
        out = self.rule(tuple(self.in_tree.unflatten(primals)), tuple(self.in_tree.unflatten(ts)))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"the custom_jvp rule of {self.name} must return a pair (primal_out, tangent_out)")
        return self.out_tree.flatten_up_to(out[1])

    def cotangent(self, j, c, res):
        """The inputs' cotangent leaves from the user's bwd, given cotangent c for output leaf j."""
        ct = self.out_tree.unflatten([c if k == j else 0.0 for k in range(self.out_tree.num_leaves)])
        cts = self.rule(self.res_tree.unflatten(res), ct)
        if not isinstance(cts, (tuple, list)):
            raise TypeError(f"the custom_vjp bwd of {self.name} must return a tuple, one entry per argument of f")
        return self.in_tree.flatten_up_to(tuple(cts))

    def bind(self, j, y, inputs, res, jac=None):
        """Output leaf j as a node: a staged equation, a Value with the rule's floats, or y itself."""
        args = (self, j, y, *inputs, *res)
        if any(type(a) is Tracer for a in args):
            return core.tracer(self.op, args)
        parents = [x for x in (*inputs, *res) if type(x) is Value]
        if not parents:
            return y
        row = (jac or self.jacobian(inputs, res))[j]
        local = [d for d, x in zip(row, inputs) if type(x) is Value] + [0.0] * sum(type(r) is Value for r in res)
        return core.node(y.data if isinstance(y, Value) else y, tuple(parents), tuple(local), self.op, args)


def _call(rule, outs, inputs, res):
    """f's output leaves (their values, with nothing flowing back through them) as custom nodes."""
    jac = None if any(type(x) is Tracer for x in (*inputs, *res)) else rule.jacobian(inputs, res)
    return [rule.bind(j, y, inputs, res, jac) for j, y in enumerate(outs)]


def _traced(leaves):
    """Whether the rule's own work must be recorded (nested or staged), not just its floats."""
    return state.depth > 1 or any(type(x) is Tracer for x in leaves)


class custom_jvp:
    """A function with a hand-written jvp rule, as `jax.custom_jvp`: decorate the rule with `f.defjvp`."""

    def __init__(self, fun, nondiff_argnums=()):
        if nondiff_argnums:
            raise NotImplementedError("microjax's custom_jvp has no nondiff_argnums: close over such arguments")
        functools.update_wrapper(self, fun)
        self.fun, self.jvp = fun, None

    def defjvp(self, jvp):
        self.jvp = jvp
        return jvp

    def __call__(self, *args):
        if self.jvp is None:
            raise AttributeError(f"No JVP defined for custom_jvp function {self.__name__} using defjvp.")
        leaves, in_tree = tree_flatten(args)
        if not any(isinstance(x, Value) for x in leaves):
            return self.fun(*args)
        outs, out_tree = tree_flatten(self.fun(*in_tree.unflatten(stop_gradient(leaves))))
        rule = _Rule("custom_jvp_call", self.fun, self.jvp, in_tree, out_tree)
        return out_tree.unflatten(_call(rule, outs, leaves, ()))


class custom_vjp:
    """A function with hand-written forward and backward passes, as `jax.custom_vjp`: `f.defvjp(fwd, bwd)`."""

    def __init__(self, fun, nondiff_argnums=()):
        if nondiff_argnums:
            raise NotImplementedError("microjax's custom_vjp has no nondiff_argnums: close over such arguments")
        functools.update_wrapper(self, fun)
        self.fun, self.fwd, self.bwd = fun, None, None

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise AttributeError(f"No VJP defined for custom_vjp function {self.__name__} using defvjp.")
        leaves, in_tree = tree_flatten(args)
        if not any(isinstance(x, Value) for x in leaves):
            return self.fun(*args)
        keep = _traced(leaves)  # residuals stay nodes when bwd's result will itself be differentiated
        out, res = self.fwd(*(args if keep else in_tree.unflatten(stop_gradient(leaves))))
        outs, out_tree = tree_flatten(out)
        res_leaves, res_tree = tree_flatten(res)
        rule = _Rule("custom_vjp_call", self.fun, self.bwd, in_tree, out_tree, res_tree)
        res_leaves = res_leaves if keep else stop_gradient(res_leaves)
        return out_tree.unflatten(_call(rule, stop_gradient(outs), leaves, res_leaves))


# -- the two primitives: the value is f's; the derivative, the rule's -----------------------------------
def _custom_jvp_jvp(tangents, rule, j, y, *rest_and_out):
    tin = tangents[3:3 + rule.n_in]
    if all(t is None for t in tin):
        return None
    t = rule.tangent(list(rest_and_out[:rule.n_in]), list(tin))[j]
    return None if type(t) is float and t == 0.0 else t


def _custom_vjp_jvp(tangents, rule, j, y, *rest_and_out):
    tin = tangents[3:3 + rule.n_in]
    if all(t is None for t in tin):
        return None
    if not any(type(t) is Lin for t in tin):
        raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function.")
    return Lin("custom_vjp", (rule, j, *tin, *rest_and_out[rule.n_in:-1]))


def _custom_vjp_transpose(c, send, rule, j, *rest):
    tin, res = rest[:rule.n_in], rest[rule.n_in:]
    for t, ct in zip(tin, rule.cotangent(j, c, list(res))):
        if type(t) is Lin and ct is not None and not (type(ct) is float and ct == 0.0):
            send(t, ct)


def _bind_custom(rule, j, y, *rest):
    return rule.bind(j, y, rest[:rule.n_in], rest[rule.n_in:])


for _op, _jvp in (("custom_jvp_call", _custom_jvp_jvp), ("custom_vjp_call", _custom_vjp_jvp)):
    core.PRIMITIVES[_op] = core.Primitive(_op, lambda rule, j, y, *rest: y, _jvp, local=lambda datas, out: ())
    _SPECIAL[_op] = _bind_custom
linear.TRANSPOSE.update({"custom_vjp": _custom_vjp_transpose, "zero": lambda c, send: None})
