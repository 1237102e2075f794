"""python -m train.sample --checkpoint DIR: new names from a saved model.

Jitted KV-cache decoding: `lax.scan` over positions, `vmap` over samples, JAX keys from --seed.
"""

from .cli import SEED, TEMPERATURE, ArgumentParser, UserError, enable_compilation_cache, number, run as run_cli


def load_model(directory):
    """(params, GPTConfig, Tokenizer) from a checkpoint, in the dtype it was trained in."""
    import jax
    import numpy as np

    from models import gpt

    from . import checkpoint
    from .data import Tokenizer

    tensors, meta = checkpoint.read_checkpoint(directory)
    try:
        config = gpt.GPTConfig(**meta["model"])
        tokenizer = Tokenizer(meta["vocab"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"damaged checkpoint {directory}: bad model description ({e})") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(f"damaged checkpoint {directory}: vocabulary of {tokenizer.vocab_size} for a model of "
                        f"{config.vocab_size}")
    dtype = tensors.get("params['wte']", np.zeros(0, np.float32)).dtype
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    template = {name: jax.ShapeDtypeStruct(shape, dtype) for name, shape in gpt.param_shapes(config).items()}
    return checkpoint.restore(tensors, "params", template), config, tokenizer


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

    from .sampling import sample_jax

    enable_compilation_cache()

    params, config, tokenizer = load_model(args.checkpoint)
    names = sample_jax(params, config, tokenizer, jax.random.PRNGKey(args.seed), args.num_samples,
                       args.temperature, args.prompt)
    for i, name in enumerate(names):
        print(f"sample {i + 1:2d}: {name}")


if __name__ == "__main__":
    run_cli(main)
