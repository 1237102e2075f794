"""python -m train.mlp: the micrograd lesson's run on microjax, optionally beside the JAX model.

An MLP with 3 inputs, two hidden layers of 4 and 1 output learns four examples by plain gradient
descent on the summed squared error: forward, backward, update, repeated. There is no "zero the
gradients" step: `value_and_grad` returns fresh gradients every call.
"""

import microjax
from microjax import init_mlp, mlp, neuron

from .cli import PICTURES, SEED, ArgumentParser, UserError, number, output_file, run as run_cli
from .lib.lesson import SIZES, XS, YS, train_jax, train_microjax


def build_parser():
    p = ArgumentParser(prog="python -m train.mlp", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=number(int, 1, 10**6), default=20, help="gradient-descent steps (20)")
    p.add_argument("--lr", type=number(float, above=0), default=0.05, help="learning rate (0.05)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the uniform [-1, 1] initial weights (0)")
    p.add_argument("--compare", action="store_true", help="train the JAX model beside it from the same weights")
    p.add_argument("--draw", metavar="PATH", help="write the graph of the first example's loss: .dot, .svg or .png")
    p.add_argument("--neuron", action="store_true", help="with --draw: only the first neuron on the first example, "
                                                         "a graph small enough to read at a glance")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    output_file(args.draw, "--draw", (".dot", *PICTURES))
    if args.neuron and not args.draw:
        raise UserError("--neuron needs --draw PATH")
    params = init_mlp(3, SIZES, seed=args.seed)
    if args.draw:
        draw(params, args.draw, args.neuron)
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


def draw(params, path, one_neuron=False):
    if one_neuron:
        first = {"w": params[0]["w"][0], "b": params[0]["b"][0]}
        dot = microjax.draw_dot(lambda p: neuron(p["w"], p["b"], XS[0]), first)
    else:
        dot = microjax.draw_dot(lambda p: (mlp(p, XS[0]) - YS[0]) ** 2, params)
    if path.endswith(".dot"):
        with open(path, "w") as f:
            f.write(dot)
    else:
        try:
            microjax.render(dot, path)
        except RuntimeError as e:
            raise UserError(str(e)) from None
    print(f"wrote the graph of {'the first neuron' if one_neuron else 'the loss'} on the first example to {path}")


if __name__ == "__main__":
    run_cli(main)
