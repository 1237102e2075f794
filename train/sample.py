"""python -m train.sample --checkpoint DIR: new names, or for a text model a passage, from a saved model.

Jitted KV-cache decoding with JAX keys from --seed. Names: `lax.scan` over positions, `vmap` over
samples. Text: each character printed as it is drawn, the context cropped to the model's block_size
as nanoGPT's `generate` does.
"""

import sys

from .cli import (NAMES_SAMPLING, SEED, TEMPERATURE, TEXT_SAMPLING, ArgumentParser, UserError,
                  enable_compilation_cache, number, print_passages, run as run_cli)


def build_parser():
    p = ArgumentParser(prog="python -m train.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="folder (or file) written by train.gpt --out")
    p.add_argument("--num-samples", type=number(int, 1, 10**6), help="names to draw (20); passages of a text (1)")
    p.add_argument("--temperature", type=TEMPERATURE, help="softmax temperature, 0.001 or more (0.5 for names, "
                                                           "0.8 for text)")
    p.add_argument("--prompt", default="", help="every name (or passage) starts with these characters")
    p.add_argument("--max-new-tokens", type=number(int, 1, 10**7),
                   help="a text model: characters to draw after the prompt (500)")
    p.add_argument("--top-k", type=number(int, 1, 10**6), help="a text model: draw from the k likeliest only")
    p.add_argument("--seed", type=SEED, default=0, help="JAX random seed (0)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import jax

    from .lib.checkpoint import load_model
    from .lib.sampling import sample_jax

    enable_compilation_cache()
    params, config, tokenizer = load_model(args.checkpoint)
    key = jax.random.PRNGKey(args.seed)
    if tokenizer.has_bos:
        if args.max_new_tokens is not None:
            raise UserError("a names model ends each name at BOS; --max-new-tokens is for text models")
        if args.top_k is not None:
            raise UserError("a names model draws from its whole softmax; --top-k is for text models")
        num_samples = _given(args.num_samples, NAMES_SAMPLING["num_samples"])
        temperature = _given(args.temperature, NAMES_SAMPLING["temperature"])
        names = sample_jax(params, config, tokenizer, key, num_samples, temperature, args.prompt)
        for i, name in enumerate(names):
            print(f"sample {i + 1:2d}: {name}")
        return
    keys = [jax.random.fold_in(key, i) for i in range(_given(args.num_samples, TEXT_SAMPLING["num_samples"]))]
    print_passages(sys.stdout, params, config, tokenizer, keys, args.prompt,
                   _given(args.max_new_tokens, TEXT_SAMPLING["max_new_tokens"]),
                   _given(args.temperature, TEXT_SAMPLING["temperature"]), args.top_k)


def _given(value, default):
    """A flag's value, or its default for this kind of model (names and text differ)."""
    return default if value is None else value


if __name__ == "__main__":
    run_cli(main)
