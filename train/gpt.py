"""python -m train.gpt: train microgpt's GPT and print new names.

With no flags it is microgpt.py, exactly: seed 42, one document per step, float64, Adam with linear
decay, 1,000 steps, 20 samples at temperature 0.5. Flags carry it further: batches, JAX keys,
a held-out split, checkpoints and resume, several devices, bfloat16.
"""

import json
import os
import sys

from .cli import (PICTURES, SEED, TEMPERATURE, ArgumentParser, FolderLock, UserError, enable_compilation_cache,
                  number, output_dir, output_file, run as run_cli)

MAX_STEPS = 10**9
FLAGS = {  # TrainConfig field -> (argparse type, help); every one defaults to the microgpt preset
    "seed": (SEED, "random seed (42)"),
    "steps": (number(int, 1, MAX_STEPS), "optimizer steps; the learning rate decays linearly to zero over them (1000)"),
    "epochs": (number(float, above=0, high=10**6), "train for this many passes over the training documents instead of --steps"),
    "batch_size": (number(int, 1, 10**6), "documents per step (1)"),
    "lr": (number(float, above=0, high=1e30), "peak Adam learning rate (0.01)"),  # it must fit in float32
    "n_layer": (number(int, 1, 1024), "transformer blocks (1)"),
    "n_embd": (number(int, 1, 65536), "embedding width (16)"),
    "n_head": (number(int, 1, 65536), "attention heads (4)"),
    "block_size": (number(int, 1, 4096), "context length (16)"),
    "rng": (str, "'python' (microgpt's random module, the default) or 'jax' (JAX keys)"),
    "dtype": (str, "float64 (default with --rng python), float32 (default with --rng jax) or bfloat16"),
    "val_fraction": (number(float, 0, below=1), "fraction of documents held out for evaluation (0)"),
    "eval_every": (number(int, 0, MAX_STEPS), "steps between evaluations on the held-out documents; 0: none (100)"),
    "chunk": (number(int, 1, 10**6), "steps per jitted dispatch (100)"),
}
CHOICES = {"rng": ("python", "jax"), "dtype": ("float64", "float32", "bfloat16")}


def build_parser():
    p = ArgumentParser(prog="python -m train.gpt", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="text file, one document per line (default: $MICROJAX_DATA, else the names.txt "
                                  "shipped with microjax)")
    for name, (kind, text) in FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text, choices=CHOICES.get(name))
    p.add_argument("--temperature", type=TEMPERATURE, default=0.5, help="sampling temperature, 0.001 or more (0.5)")
    p.add_argument("--num-samples", type=number(int, 0, 10**6), default=20, help="names to sample after training (20)")
    p.add_argument("--out", help="checkpoint folder: saved at the end, every --save-every steps, and on Ctrl-C or "
                                 "SIGTERM; one run at a time")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--save-every", type=number(int, 0, MAX_STEPS), default=0, help="also save every this many steps")
    p.add_argument("--until-step", type=number(int, 1, MAX_STEPS),
                   help="stop after this step (the schedule still spans --steps)")
    p.add_argument("--devices", type=number(int, 1, 65536), help="use only the first N devices")
    p.add_argument("--metrics-file", help="write one JSON object per step (and per evaluation)")
    p.add_argument("--plot", help="save a PNG of the loss curve here")
    p.add_argument("--probe", help="print the next-character distribution after this context, before and after")
    p.add_argument("--probe-plot", help="save a bar chart of the --probe distributions, before and after, here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR, the checkpoint folder")
    if args.probe_plot and args.probe is None:
        raise UserError("--probe-plot needs --probe CONTEXT, the context whose next character it charts")
    if args.save_every and not args.out:
        raise UserError("--save-every needs --out DIR, where to save")
    if args.steps is not None and args.epochs is not None:
        raise UserError("give --steps or --epochs, not both")
    # Every output is checked (and its folder made) before any work, so a run never fails at its end.
    out = output_dir(args.out, "--out")
    metrics_path = output_file(args.metrics_file, "--metrics-file")
    plot_path = output_file(args.plot, "--plot", PICTURES)
    args.probe_plot = output_file(args.probe_plot, "--probe-plot", PICTURES)
    main_process = os.environ.get("JAX_PROCESS_ID", "0") == "0"  # only process 0 writes
    if out and main_process:
        with FolderLock(out):
            return train_and_sample(args, overrides, out, metrics_path, plot_path)
    return train_and_sample(args, overrides, out, metrics_path, plot_path)


def train_and_sample(args, overrides, out, metrics_path, plot_path):
    import jax  # after the checks, so that --help and bad flags answer at once

    enable_compilation_cache()

    from . import checkpoint, devices, loop, sampling, trainer
    from .data import load_docs, resolve_data_path
    from .progress import Progress

    if out and not args.resume and (out / checkpoint.FILENAME).exists():
        raise UserError(f"--out {out} already holds a checkpoint; add --resume to continue it, or choose another "
                        "folder (a new run never overwrites one)")
    saved = checkpoint.read_checkpoint(out) if args.resume else None
    cfg = loop.resumed_config(saved[1], overrides) if saved else trainer.TrainConfig(**overrides)
    if cfg.compute_dtype == jax.numpy.float64:
        jax.config.update("jax_enable_x64", True)
    devices.init_distributed()
    data_path = resolve_data_path(args.data)
    docs = load_docs(data_path)
    run = trainer.prepare(cfg, docs, args.devices, source=data_path)
    if saved:
        loop.restore_run(run, *saved)
        if args.until_step is not None and args.until_step <= run.step:
            raise UserError(f"--until-step {args.until_step}: the checkpoint is already at step {run.step}")
    main_process = jax.process_index() == 0
    say = print if main_process else (lambda *a, **k: None)
    say(f"devices: {run.mesh.size} ({run.mesh.devices.flat[0].platform})")
    say(f"num docs: {len(docs)} (train {len(run.train_docs)}, val {len(run.val_docs)}) | vocab size: "
        f"{run.model.vocab_size} | num params: {sum(p.size for p in run.params.values())} | truncated to "
        f"block_size: {run.truncated}" + (f" | resumed at step {run.step}" if saved else ""))
    if args.probe is not None:
        before = sampling.probe(devices.to_host(run.params), run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "before training", before, args.probe)

    # On resume the metrics file is rewritten from the checkpoint's history: steps a killed run wrote
    # after its last checkpoint are dropped, and every step appears exactly once.
    metrics = open_metrics(metrics_path, run.history) if metrics_path and main_process else None
    progress = Progress(run.total_steps, run.step) if main_process else None

    val = next((r["val_loss"] for r in reversed(run.history) if "val_loss" in r), None)  # the latest evaluation

    def on_chunk(run, rows, tokens_per_second):
        nonlocal val
        if metrics:
            metrics.writelines(json.dumps(r) + "\n" for r in rows)
            metrics.flush()
        val = next((r["val_loss"] for r in reversed(rows) if "val_loss" in r), val)
        if progress:
            last = [r for r in rows if "loss" in r][-1]
            progress.update(last["step"], last["loss"], val,
                            run.step * run.cfg.batch_size / len(run.train_docs), tokens_per_second)

    try:
        status = loop.train(run, args.until_step, out, args.save_every, on_chunk)
    finally:
        if progress:
            progress.close()
        if metrics:
            metrics.close()
    if status != "done":
        where = f"; saved to {out}; continue with --resume" if out else ""
        say(f"stopped by {status.name} at step {run.step}{where}", file=sys.stderr)
        sys.exit(128 + status)
    if out:
        say(f"checkpoint at step {run.step} in {out}")
    params = devices.to_host(run.params)
    if args.probe is not None:
        after = sampling.probe(params, run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "after training", after, args.probe)
        if args.probe_plot and main_process:
            from .pictures import plot_probe

            say(f"saved the next-character chart to {plot_probe(args.probe, before, after, args.probe_plot)}")
    if plot_path and main_process:
        from .plot import plot_losses

        plot_losses(run.history, plot_path)
        say(f"saved loss curve to {plot_path}")
    if args.num_samples:
        if run.rng is not None:
            names = sampling.sample_python(params, run.model, run.tokenizer, run.rng, args.num_samples, args.temperature)
        else:
            key = trainer.subkey(run.key, "sample")
            names = sampling.sample_jax(params, run.model, run.tokenizer, key, args.num_samples, args.temperature)
        say("--- inference (new, hallucinated names) ---")
        for i, name in enumerate(names):
            say(f"sample {i + 1:2d}: {name}")


def open_metrics(path, history):
    """The metrics file holding exactly `history` (written atomically), open for appending."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    os.replace(tmp, path)
    return open(path, "a")


def show_probe(say, when, dist, context):
    say(f"next character after {context!r}, {when}: " + "  ".join(f"{c} {p:5.1%}" for c, p in dist[:5]))


if __name__ == "__main__":
    run_cli(main)
