"""python -m train.attention --checkpoint DIR --text emma --out attention.png: where each letter looks.

A heat map per layer and head of a trained model's attention weights over BOS + the text, queries
down and keys across, as `models.gpt.apply` computes them.
"""

import argparse

from .cli import run as run_cli


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m train.attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="directory (or file) written by train.gpt --out")
    p.add_argument("--text", required=True, help="the name (or any text in the vocabulary) to look at")
    p.add_argument("--out", required=True, help="the PNG (or .svg, .pdf) to write")
    args = p.parse_args(argv)

    from .pictures import attention, plot_attention
    from .sample import load_model

    params, config, tokenizer = load_model(args.checkpoint)
    labels, weights = attention(params, config, tokenizer, args.text)
    plot_attention(labels, weights, args.out, title=f"attention over {args.text!r} ({args.checkpoint})")
    print(f"wrote {config.n_layer} layer(s) x {config.n_head} heads of attention over {args.text!r} to {args.out}")


if __name__ == "__main__":
    run_cli(main)
