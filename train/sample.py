"""python -m train.sample --checkpoint DIR: new names from a saved model.

Jitted KV-cache decoding: `lax.scan` over positions, `vmap` over samples, JAX keys from --seed.
"""

from .cli import SEED, TEMPERATURE, ArgumentParser, enable_compilation_cache, number, run as run_cli


def build_parser():
    p = ArgumentParser(prog="python -m train.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="folder (or file) written by train.gpt --out")
    p.add_argument("--num-samples", type=number(int, 1, 10**6), default=20, help="names to draw (20)")
    p.add_argument("--temperature", type=TEMPERATURE, default=0.5, help="softmax temperature, 0.001 or more (0.5)")
    p.add_argument("--prompt", default="", help="every name starts with these characters")
    p.add_argument("--seed", type=SEED, default=0, help="JAX random seed (0)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import jax

    from .lib.checkpoint import load_model
    from .lib.sampling import sample_jax

    enable_compilation_cache()
    params, config, tokenizer = load_model(args.checkpoint)
    names = sample_jax(params, config, tokenizer, jax.random.PRNGKey(args.seed), args.num_samples,
                       args.temperature, args.prompt)
    for i, name in enumerate(names):
        print(f"sample {i + 1:2d}: {name}")


if __name__ == "__main__":
    run_cli(main)
