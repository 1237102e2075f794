"""python -m train.gpt: train microgpt's GPT and print new names.

With no flags it is microgpt.py, exactly: seed 42, one document per step, float64, Adam with linear
decay, 1,000 steps, 20 samples at temperature 0.5. Flags carry it further: batches, JAX keys,
a held-out split, checkpoints and resume, several devices, bfloat16; one long text (--format text) and
nanoGPT's training features (AdamW, warm-up and cosine, clipping, dropout, accumulation); and presets,
such as nanoGPT's Shakespeare (--preset shakespeare-char-cpu).
"""

import json
import os
import signal
import sys
import threading

from .cli import (NAMES_SAMPLING, PICTURES, TEMPERATURE, TEXT_SAMPLING, ArgumentParser, FolderLock, UserError,
                  add_config_flags, enable_compilation_cache, number, output_dir, output_file, print_passages,
                  run as run_cli)
from .lib import flops, presets
from .lib.config import MAX_STEPS, TrainConfig
from .lib.progress import Progress


def build_parser():
    p = ArgumentParser(prog="python -m train.gpt", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="text file: one document per line, or with --format text one text (default: the "
                                  "preset's data set; for microgpt $MICROJAX_DATA, else the names.txt shipped with "
                                  "microjax)")
    add_config_flags(p, TrainConfig, help={"preset": PRESET_HELP})
    p.add_argument("--temperature", type=TEMPERATURE, help="sampling temperature, 0.001 or more (0.5 for names, "
                                                           "0.8 for text)")
    p.add_argument("--num-samples", type=number(int, 0, 10**6),
                   help="names to sample after training (20); for a text, passages of --max-new-tokens (1)")
    p.add_argument("--max-new-tokens", type=number(int, 1, 10**7), default=TEXT_SAMPLING["max_new_tokens"],
                   help=f"characters each text sample draws ({TEXT_SAMPLING['max_new_tokens']})")
    p.add_argument("--out", help="checkpoint folder: saved at the end, every --save-every steps, and on Ctrl-C or "
                                 "SIGTERM; one run at a time")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--save-every", type=number(int, 0, MAX_STEPS), default=0, help="also save every this many steps")
    p.add_argument("--keep-best", action="store_true",
                   help="also keep the checkpoint of the lowest val loss so far, in --out/best")
    p.add_argument("--until-step", type=number(int, 1, MAX_STEPS),
                   help="stop after this step (the schedule still spans --steps)")
    p.add_argument("--devices", type=number(int, 1, 65536), help="use only the first N devices")
    p.add_argument("--mesh", help="lay the run out on a mesh of data, fsdp and model axes, e.g. "
                                  "data=2,fsdp=2,model=2 (the product is the devices used): fsdp splits the "
                                  "parameters and Adam state, model splits each block Megatron-style; may change "
                                  "on --resume")
    p.add_argument("--metrics-file", help="write one JSON object per step (and per evaluation)")
    p.add_argument("--plot", help="save a picture of the loss curve here (.png, .svg or .pdf)")
    p.add_argument("--probe", help="print the next-character distribution after this context, before and after")
    p.add_argument("--probe-plot", help="save a bar chart of the --probe distributions, before and after, here")
    return p


PRESET_HELP = ("start from a named configuration; flags given override its fields: "
               + "; ".join(f"{name}{' (the default)' if name == presets.DEFAULT else ''}: {about}"
                           for name, about in presets.ABOUT.items()))


def main(argv=None):
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if args.preset is not None:
        overrides = {**presets.settings(args.preset), **overrides}
    if args.keep_best and not args.out:
        raise UserError("--keep-best needs --out DIR, where to keep it")
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR, the checkpoint folder")
    if args.probe_plot and args.probe is None:
        raise UserError("--probe-plot needs --probe CONTEXT, the context whose next character it charts")
    if args.save_every and not args.out:
        raise UserError("--save-every needs --out DIR, where to save")
    if args.steps is not None and args.epochs is not None:
        raise UserError("give --steps or --epochs, not both")
    # Every output is checked (and its folder made) before any work, so a run never fails at its end.
    args.out = output_dir(args.out, "--out")
    args.metrics_file = output_file(args.metrics_file, "--metrics-file")
    args.plot = output_file(args.plot, "--plot", PICTURES)
    args.probe_plot = output_file(args.probe_plot, "--probe-plot", PICTURES)

    from .lib import devices  # jax starts here: after the checks, so that --help and bad flags answer at once

    enable_compilation_cache()
    devices.init_distributed()
    if args.out and devices.is_main_process():
        with FolderLock(args.out):
            return train_and_sample(args, overrides)
    return train_and_sample(args, overrides)


class Output:
    """Standard output as the run writes it, from process 0 only. A reader that has gone (`| head`) or
    an output that cannot be written (a full disk) is noted in `failed` rather than raised, so that
    training can stop at a saved checkpoint; later writes go nowhere."""

    def __init__(self, on, stream=None):
        self.on, self.stream, self.failed = on, stream or sys.stdout, None

    def __call__(self, *args, file=None):
        """print(); to stderr (`file=sys.stderr`) as well, where a failure is ignored."""
        if file is None:
            print(*args, file=self, flush=True)
        elif self.on:
            try:
                print(*args, file=file, flush=True)
            except OSError:
                pass

    def write(self, text):
        if self.on and not self.failed:
            self._try(self.stream.write, text)
        return len(text)

    def flush(self):
        if self.on and not self.failed:
            self._try(self.stream.flush)

    def isatty(self):
        return self.stream.isatty()

    def _try(self, fn, *args):
        try:
            fn(*args)
        except OSError as e:
            self.failed = e
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())  # nor does Python's flush at exit


def train_and_sample(args, overrides):
    import jax

    from .lib import checkpoint, devices, loop, run as runs, sampling, sharding, text
    from .lib.data import load_docs, resolve_data_path

    mesh = sharding.parse_mesh(args.mesh) if args.mesh is not None else None
    out = args.out
    if out and not args.resume and checkpoint.exists(out):
        raise UserError(f"--out {out} already holds a checkpoint; add --resume to continue it, or choose another "
                        "folder (a new run never overwrites one)")
    saved = checkpoint.read_checkpoint(out) if args.resume else None
    cfg = checkpoint.resumed_config(saved[1], overrides) if saved else TrainConfig(**overrides)
    if cfg.compute_dtype == jax.numpy.float64:
        jax.config.update("jax_enable_x64", True)
    data_path = resolve_data_path(args.data, cfg.preset)
    docs = text.load_text(data_path) if cfg.format == "text" else load_docs(data_path)
    run, state = runs.prepare(cfg, docs, args.devices, source=data_path, mesh=mesh)
    history = []
    if saved:
        state, history = checkpoint.restore_run(run, state, *saved)
    step = int(devices.to_host(state.step))
    if saved and args.until_step is not None and args.until_step <= step:
        raise UserError(f"--until-step {args.until_step}: the checkpoint is already at step {step}")
    main_process = devices.is_main_process()
    say = Output(main_process)
    available = len(jax.devices())
    platform = run.mesh.devices.flat[0].platform
    say(f"devices: {run.mesh.size}{f' of {available}' if available != run.mesh.size else ''} ({platform})"
        + (f" | {sharding.describe(run.mesh, state.params, state.opt_state, run.whole)}"
           if mesh or run.mesh.size > 1 else ""))
    params_line = f"vocab size: {run.model.vocab_size} | num params: {sum(p.size for p in state.params.values())}"
    resumed = f" | resumed at step {step}" if saved else ""
    if run.is_text:
        val_tokens = run.val_data[0].shape[0] if run.val_data else 0
        say(f"text: {len(docs):,} characters (train {run.train_tokens:,}, val {val_tokens:,}) | {params_line} | "
            f"preset: {cfg.preset}{resumed}")
    else:
        say(f"num docs: {len(docs)} (train {len(run.train_docs)}, val {len(run.val_docs)}) | {params_line} | "
            f"truncated to block_size: {run.truncated}" + (f" | preset: {cfg.preset}" if cfg.preset != presets.DEFAULT
                                                           else "") + resumed)
        if run.truncated:
            longest = max(len(d) for d in run.train_docs + run.val_docs)
            say(f"note: {run.truncated} documents are longer than the context and were cut to {cfg.block_size - 1} "
                f"characters; --block-size {longest + 1} fits them all, or --format text trains on the file as one "
                "text", file=sys.stderr)
    if args.probe is not None:
        before = sampling.probe(devices.to_host(state.params), run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "before training", before, args.probe)

    # On resume the metrics file is rewritten from the checkpoint's history: steps a killed run wrote
    # after its last checkpoint are dropped, and every step appears exactly once.
    metrics = open_metrics(args.metrics_file, history) if args.metrics_file and main_process else None
    progress = Progress(run.total_steps, step, stream=say) if main_process else None
    val = next(((r["step"], r["val_loss"]) for r in reversed(history) if "val_loss" in r), (None, None))
    peak = []  # (FLOP/s of the devices together, its label), found at the first dispatch that did not compile

    def throughput(chunk):
        """{"step", "tokens_per_second", "mfu", "peak"} of a dispatch that did not compile. A CPU's rate
        is measured once per machine (cached), by a batched run: a one-document run uses it once cached."""
        rate = chunk.tokens / max(chunk.seconds, 1e-9)
        if not peak:
            device = run.mesh.devices.flat[0]
            value, label = flops.peak(device, jax.numpy.dtype(cfg.compute_dtype).name, measure=cfg.batch_size > 1)
            # the CPU's forced devices share its cores, and its rate was measured with all of them
            peak.append((value and value * (1 if platform == "cpu" else run.mesh.size), label))
        row = {"step": chunk.step, "tokens_per_second": round(rate, 1)}
        if peak[0][0]:
            row.update(mfu=flops.mfu(rate, run.model, peak[0][0], 1), peak=peak[0][1])
        return row

    def on_chunk(chunk):
        nonlocal val
        speed = None if chunk.compiled else throughput(chunk)
        if metrics:
            try:
                metrics.writelines(json.dumps(r) + "\n" for r in chunk.rows + ([speed] if speed else []))
                metrics.flush()
            except OSError as e:
                return f"cannot write --metrics-file {args.metrics_file} ({e.strerror or e})"
        val = next(((r["step"], r["val_loss"]) for r in reversed(chunk.rows) if "val_loss" in r), val)
        if progress:
            last = [r for r in chunk.rows if "loss" in r][-1]
            progress.update(last["step"], last["loss"], val[1], val[0], run.epochs_done(chunk.step),
                            speed and speed["tokens_per_second"], chunk.seconds if chunk.compiled else None,
                            speed and speed.get("mfu"), chunk.prepared)
        if say.failed:
            return f"its output cannot be written ({say.failed.strerror or say.failed})"

    sampler = None
    defaults = TEXT_SAMPLING if run.is_text else NAMES_SAMPLING
    num_samples = defaults["num_samples"] if args.num_samples is None else args.num_samples
    temperature = defaults["temperature"] if args.temperature is None else args.temperature
    if num_samples and run.python_rng is not None:  # compiled on the other core while the model trains
        sampler = threading.Thread(target=quietly, args=(sampling.prepare_sample_python, run.model, run.tokenizer,
                                                         cfg.param_dtype, num_samples))
        sampler.start()
    try:
        trained = loop.train(run, state, history, args.until_step, out, args.save_every, on_chunk,
                             keep_best=args.keep_best)
    finally:
        if sampler:
            sampler.join()  # however training ends: the process never exits under a compiling thread
        if progress:
            progress.close()
        if metrics:
            try:
                metrics.close()
            except OSError:
                pass
    state, history, stopped = trained
    step = int(devices.to_host(state.step))
    if stopped is not None:
        where = f"; saved to {out}; continue with --resume" if out else ""
        if isinstance(stopped, signal.Signals):
            say(f"stopped by {stopped.name} at step {step}{where}", file=sys.stderr)
            return 128 + stopped
        if say.failed and isinstance(say.failed, BrokenPipeError):
            return 128 + signal.SIGPIPE  # quietly, as a process killed by SIGPIPE: `| head` read what it wanted
        raise UserError(f"stopped at step {step}: {stopped}{where}")
    if out:
        say(f"checkpoint at step {step} in {out}")
    params = devices.to_host(state.params)
    if args.probe is not None:
        after = sampling.probe(params, run.model, run.tokenizer, args.probe, top=None)
        show_probe(say, "after training", after, args.probe)
        if args.probe_plot and main_process:
            from .lib.pictures import plot_probe

            say(f"saved the next-character chart to {plot_probe(args.probe, before, after, args.probe_plot)}")
    if args.plot and main_process:
        from .lib.pictures import plot_losses

        plot_losses(history, args.plot)
        say(f"saved loss curve to {args.plot}")
    whole = next((r["val_whole"] for r in reversed(history) if "val_whole" in r), None)
    if whole is not None:
        say(f"val loss over the whole validation split at step {step}: {whole:.4f}")
    if num_samples and run.is_text and not say.failed:
        say("--- sample ---")
        print_passages(say, params, run.model, run.tokenizer,
                       [runs.subkey(state.key, "sample", i) for i in range(num_samples)], "", args.max_new_tokens,
                       temperature)
    elif num_samples and not say.failed:
        if run.python_rng is not None:
            names = sampling.sample_python(params, run.model, run.tokenizer, sampling.python_rng(run.python_rng),
                                           num_samples, temperature)
        else:
            key = runs.subkey(state.key, "sample")
            names = sampling.sample_jax(params, run.model, run.tokenizer, key, num_samples, temperature)
        say("--- inference (new, hallucinated names) ---")
        for i, name in enumerate(names):
            say(f"sample {i + 1:2d}: {name}")
    if isinstance(say.failed, BrokenPipeError):
        return 128 + signal.SIGPIPE
    if say.failed:
        raise UserError(f"the output cannot be written ({say.failed.strerror or say.failed})")


def quietly(fn, *args):
    """fn(*args) on a helper thread, where a failure only means the work is done again when needed."""
    try:
        fn(*args)
    except Exception:
        pass


def open_metrics(path, history):
    """The metrics file holding exactly `history` (written atomically), open for appending."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
        os.replace(tmp, path)
        return open(path, "a")
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write --metrics-file {path}: {e.strerror or e}") from None


def show_probe(say, when, dist, context):
    say(f"next character after {context!r}, {when}: " + "  ".join(f"{c} {p:5.1%}" for c, p in dist[:5]))


if __name__ == "__main__":
    run_cli(main)
