"""python -m train.attention --checkpoint DIR --text emma --out runs/attention.png: where each letter looks.

A heat map per layer and head of a trained model's attention weights over BOS + the text, queries
down and keys across, as `models.gpt.apply` computes them.
"""

from .cli import PICTURES, ArgumentParser, output_file, run as run_cli


def build_parser():
    p = ArgumentParser(prog="python -m train.attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="folder (or file) written by train.gpt --out")
    p.add_argument("--text", required=True, help="the name (or any text in the vocabulary) to look at")
    p.add_argument("--out", required=True, help="the picture to write: .png, .svg or .pdf")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = output_file(args.out, "--out", PICTURES)  # before any work

    from .lib.checkpoint import load_model
    from .lib.pictures import attention, plot_attention

    params, config, tokenizer = load_model(args.checkpoint)
    labels, weights = attention(params, config, tokenizer, args.text)
    # the title names the model, not where it was saved: a temporary folder means nothing in a picture
    plot_attention(labels, weights, out, title=f"attention over {args.text!r}: {config.n_layer} layer(s), "
                                                f"{config.n_head} heads, n_embd {config.n_embd}")
    print(f"wrote {config.n_layer} layer(s) x {config.n_head} heads of attention over {args.text!r} to {out}")


if __name__ == "__main__":
    run_cli(main)
