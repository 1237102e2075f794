"""python -m train.gpt: train microgpt's GPT and print new names.

With no flags it is microgpt.py, exactly: seed 42, one document per step, float64, Adam with linear
decay, 1,000 steps, 20 samples at temperature 0.5. Flags carry it further: batches, JAX keys,
a held-out split, checkpoints and resume, several devices, bfloat16.
"""

import argparse
import json
import sys

from .cli import UserError, enable_compilation_cache, run as run_cli

FLAGS = {  # TrainConfig field -> (type, help); every one defaults to the microgpt preset
    "seed": (int, "random seed (42)"),
    "steps": (int, "optimizer steps; the learning rate decays linearly to zero over them (1000)"),
    "epochs": (float, "train for this many passes over the training documents instead of --steps"),
    "batch_size": (int, "documents per step (1)"),
    "lr": (float, "peak Adam learning rate (0.01)"),
    "n_layer": (int, "transformer blocks (1)"),
    "n_embd": (int, "embedding width (16)"),
    "n_head": (int, "attention heads (4)"),
    "block_size": (int, "context length (16)"),
    "rng": (str, "'python' (microgpt's random module, the default) or 'jax' (JAX keys)"),
    "dtype": (str, "float64 (default with --rng python), float32 (default with --rng jax) or bfloat16"),
    "val_fraction": (float, "fraction of documents held out for evaluation (0)"),
    "eval_every": (int, "steps between evaluations on the held-out documents (100)"),
    "chunk": (int, "steps per jitted dispatch (100)"),
}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.gpt", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="text file, one document per line (default: $MICROJAX_DATA, else names.txt)")
    for name, (kind, text) in FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    p.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (0.5)")
    p.add_argument("--num-samples", type=int, default=20, help="names to sample after training (20)")
    p.add_argument("--out", help="checkpoint directory: saved at the end, on Ctrl-C and every --save-every steps")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--save-every", type=int, default=0, help="also save every this many steps")
    p.add_argument("--until-step", type=int, help="stop after this step (the schedule still spans --steps)")
    p.add_argument("--devices", type=int, help="use only the first N devices")
    p.add_argument("--metrics-file", help="write one JSON object per step (and per evaluation)")
    p.add_argument("--plot", help="save a PNG of the loss curve here")
    p.add_argument("--probe", help="print the next-character distribution after this context, before and after")
    p.add_argument("--probe-plot", help="save a bar chart of the --probe distributions, before and after, here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR, the checkpoint directory")
    if args.temperature <= 0 or args.num_samples < 0:
        raise UserError("need --temperature > 0 and --num-samples >= 0")
    if args.probe_plot and args.probe is None:
        raise UserError("--probe-plot needs --probe CONTEXT, the context whose next character it charts")

    import jax  # after argument parsing, so that --help and bad flags answer at once

    enable_compilation_cache()

    from . import checkpoint, devices, loop, sampling, trainer
    from .data import load_docs, resolve_data_path

    saved = checkpoint.read_checkpoint(args.out) if args.resume else None
    cfg = loop.resumed_config(saved[1], overrides) if saved else trainer.TrainConfig(**overrides)
    if cfg.compute_dtype == jax.numpy.float64:
        jax.config.update("jax_enable_x64", True)
    devices.init_distributed()
    docs = load_docs(resolve_data_path(args.data))
    run = trainer.prepare(cfg, docs, args.devices)
    if saved:
        loop.restore_run(run, *saved)
    main_process = jax.process_index() == 0
    say = print if main_process else (lambda *a, **k: None)
    say(f"devices: {run.mesh.size} ({run.mesh.devices.flat[0].platform})")
    say(f"num docs: {len(docs)} (train {len(run.train_docs)}, val {len(run.val_docs)}) | vocab size: "
        f"{run.model.vocab_size} | num params: {sum(p.size for p in run.params.values())} | truncated to "
        f"block_size: {run.truncated}" + (f" | resumed at step {run.step}" if saved else ""))
    if args.probe is not None:
        before = sampling.probe(devices.to_host(run.params), run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "before training", before, args.probe)

    metrics = None
    if args.metrics_file and main_process:
        try:
            metrics = open(args.metrics_file, "a" if saved else "w")
        except OSError as e:
            raise UserError(f"cannot write the metrics file {args.metrics_file}: {e.strerror}") from None
    history = []

    def on_chunk(run, rows, tokens_per_second):
        history.extend(rows)
        if metrics:
            metrics.writelines(json.dumps(r) + "\n" for r in rows)
            metrics.flush()
        last = [r for r in rows if "loss" in r][-1]
        val = [r["val_loss"] for r in rows if "val_loss" in r]
        say(f"step {last['step']:4d} / {run.total_steps:4d} | loss {last['loss']:.4f}"
            + (f" | val {val[-1]:.4f}" if val else "")
            + f" | epoch {run.step * run.cfg.batch_size / len(run.train_docs):.2f} | {tokens_per_second:,.0f} tok/s",
            end="\r", flush=True)

    try:
        status = loop.train(run, args.until_step, args.out, args.save_every, on_chunk)
    finally:
        say()
        if metrics:
            metrics.close()
    if status == "interrupted":
        say(f"interrupted at step {run.step}" + (f"; saved to {args.out}" if args.out else ""), file=sys.stderr)
        sys.exit(130)
    if args.out:
        say(f"saved checkpoint at step {run.step} to {args.out}")
    params = devices.to_host(run.params)
    if args.probe is not None:
        after = sampling.probe(params, run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "after training", after, args.probe)
        if args.probe_plot and main_process:
            from .pictures import plot_probe

            say(f"saved the next-character chart to {plot_probe(args.probe, before, after, args.probe_plot)}")
    if args.plot and main_process:
        from .plot import plot_losses

        plot_losses(history, args.plot)
        say(f"saved loss curve to {args.plot}")
    if args.num_samples:
        if run.rng is not None:
            names = sampling.sample_python(params, run.model, run.tokenizer, run.rng, args.num_samples, args.temperature)
        else:
            key = trainer.subkey(run.key, "sample")
            names = sampling.sample_jax(params, run.model, run.tokenizer, key, args.num_samples, args.temperature)
        say("--- inference (new, hallucinated names) ---")
        for i, name in enumerate(names):
            say(f"sample {i + 1:2d}: {name}")


def show_probe(say, when, dist, context):
    say(f"next character after {context!r}, {when}: " + "  ".join(f"{c} {p:5.1%}" for c, p in dist[:5]))


if __name__ == "__main__":
    run_cli(main)
