"""python -m train.mlp: the micrograd lesson's run on microjax, optionally beside the JAX model.

An MLP with 3 inputs, two hidden layers of 4 and 1 output learns four examples by plain gradient
descent on the summed squared error: forward, backward, update, repeated. There is no "zero the
gradients" step: `value_and_grad` returns fresh gradients every call.
"""

import microjax
from microjax import init_mlp, mlp, sgd, squared_error, value_and_grad

from .cli import PICTURES, SEED, ArgumentParser, UserError, number, output_file, run as run_cli

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]
SIZES = (4, 4, 1)


def train_microjax(params, steps, lr):
    """Yield (step, loss, params) for each step of gradient descent on the scalar engine."""
    loss_and_grad = value_and_grad(squared_error)
    for step in range(1, steps + 1):
        loss, grads = loss_and_grad(params, XS, YS)
        params = sgd(params, grads, lr)
        yield step, loss, params


def train_jax(params, steps, lr):
    """The same run on the JAX model (models/mlp.py), float64, one jitted step a call."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from models import mlp as jmlp

    xs, ys = jnp.asarray(XS, jnp.float64), jnp.asarray(YS, jnp.float64)

    @jax.jit
    def step(params):
        loss, grads = jax.value_and_grad(jmlp.squared_error)(params, xs, ys)
        return loss, jax.tree.map(lambda p, g: p - lr * g, params, grads)

    params = jmlp.from_microjax(params, jnp.float64)
    for i in range(1, steps + 1):
        loss, params = step(params)
        yield i, float(loss), params


def build_parser():
    p = ArgumentParser(prog="python -m train.mlp", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=number(int, 1, 10**6), default=20, help="gradient-descent steps (20)")
    p.add_argument("--lr", type=number(float, above=0), default=0.05, help="learning rate (0.05)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the uniform [-1, 1] initial weights (0)")
    p.add_argument("--compare", action="store_true", help="train the JAX model beside it from the same weights")
    p.add_argument("--draw", metavar="PATH", help="write the graph of the first example's loss: .dot, .svg or .png")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    output_file(args.draw, "--draw", (".dot", *PICTURES))
    params = init_mlp(3, SIZES, seed=args.seed)
    if args.draw:
        draw(params, args.draw)
    runs = [train_microjax(params, args.steps, args.lr)]
    if args.compare:
        runs.append(train_jax(params, args.steps, args.lr))
        print(f"{'step':>4} | {'microjax loss':>16} | {'jax loss':>16} | {'difference':>9}")
    worst = 0.0
    for results in zip(*runs):
        step, loss, params = results[0]
        if args.compare:
            jax_loss = results[1][1]
            worst = max(worst, abs(loss - jax_loss))
            print(f"{step:4d} | {loss:16.12f} | {jax_loss:16.12f} | {abs(loss - jax_loss):9.2e}")
        else:
            print(f"step {step:3d} | loss {loss:.6f}")
    if args.compare:
        print(f"largest loss difference over {args.steps} steps: {worst:.2e}")
    print("predictions:", ", ".join(f"{mlp(params, x):+.4f}" for x in XS), "| targets:", YS)


def draw(params, path):
    dot = microjax.draw_dot(lambda p: (mlp(p, XS[0]) - YS[0]) ** 2, params)
    if path.endswith(".dot"):
        with open(path, "w") as f:
            f.write(dot)
    else:
        try:
            microjax.render(dot, path)
        except RuntimeError as e:
            raise UserError(str(e)) from None
    print(f"wrote the graph of the first example's loss to {path}")


if __name__ == "__main__":
    run_cli(main)
