"""The benchmark's cases; each returns table rows measured against a baseline in the same run."""

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from train.lib.data import load_docs, resolve_data_path

from .timing import median_seconds, row, skipped

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_env(**extra):
    """The environment for a command as a user runs it: this one's, less PYTHONDONTWRITEBYTECODE, which some
    sandboxes set and which makes every start compile the project's source again (0.2 s of the main job)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def docs():
    return load_docs(resolve_data_path())


def have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# 1. the microgpt preset -------------------------------------------------------------------------
def preset(args):
    jax.config.update("jax_enable_x64", True)
    import optax

    from train.lib import batches, devices, loop, run as runs, step
    from train.lib.config import TrainConfig

    run, state = runs.prepare(TrainConfig(), docs())
    start = devices.to_host(state)

    def fresh():  # training donates the state it is given
        return devices.put(start, run.replicated)

    def timed_job(long_run):
        chunk = step.make_train_chunk(run, long_run=long_run)
        idx = runs.step_ids(run, runs.batch_indices(run, state.key, 0, run.cfg.chunk))
        begin = time.perf_counter()
        chunk.lower(fresh(), *run.data, idx).compile()
        compile_s = time.perf_counter() - begin
        train = lambda: loop.train(run, fresh(), chunk=chunk)  # noqa: E731
        train()  # warm-up, compiles
        return compile_s, median_seconds(train, args.reps, warmup=0) / run.total_steps

    compile_s, per_step = timed_job(None)

    # baseline: the straightforward version, one jitted step per Python call
    model, optimizer = run.model, run.optimizer

    @jax.jit
    def one_step(params, opt_state, rows, n):
        loss, grads = jax.value_and_grad(batches.batch_loss)(params, rows, n, model, jax.numpy.float64)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rows, n = (np.asarray(a) for a in devices.to_host(run.data))
    indices = runs.batch_indices(run, state.key, 0, 200)

    def python_loop():
        params = start.params
        opt_state = optimizer.init(params)
        for i in indices:
            params, opt_state, loss = one_step(params, opt_state, rows[i], n[i])
        loss.block_until_ready()

    plain = median_seconds(python_loop, args.reps) / len(indices)

    rows_out = [row("microgpt preset, float64: train step, compiled as the 1,000-step job", "preset_us_per_step",
                    per_step * 1e6, "µs/step",
                    "jit per step, Python loop", plain * 1e6),
                row("microgpt preset: train-step compile", "compile_s", compile_s, "s")]
    if jax.default_backend() == "cpu":  # the same step compiled as for long runs (step.LONG_RUN_DOCS)
        long_compile_s, long_step = timed_job(True)
        rows_out += [row("  the same, compiled for long runs (>= 20k docs): steady state", "preset_long_us_per_step",
                         long_step * 1e6, "µs/step", "jit per step, Python loop", plain * 1e6),
                     row("  its compile", "compile_long_s", long_compile_s, "s")]
    return rows_out + whole_job(args)


def whole_job(args):
    """`python -m train.gpt` as a user runs it: cold (empty compilation cache) and warm."""
    def timed(cmd, env):
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr)
        return time.perf_counter() - start, out.stdout

    job = [sys.executable, "-m", "train.gpt"]
    reps = max(3, args.reps // 2)
    cold, warm = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as cache:
            env = user_env(JAX_COMPILATION_CACHE_DIR=cache)
            cold.append(timed(job, env)[0])
            warm.append(timed(job, env)[0])
    torch_s = None
    if have("torch"):
        torch_s = statistics.median(timed([sys.executable, "-m", "bench.torch_microgpt"], user_env())[0]
                                    for _ in range(2))
    baseline = "PyTorch eager, whole job" if torch_s else None
    cold, warm = statistics.median(cold), statistics.median(warm)
    return [row("whole microgpt job, cold", "whole_job_cold_s", cold, "s", baseline, torch_s),
            row("whole microgpt job, compilation cache warm", "whole_job_warm_s", warm, "s", baseline, torch_s)]


# 2. the scalar twin -------------------------------------------------------------------------------
def scalar(args):
    from train.lib.scalar import train_microgpt

    steps = 3
    start = time.perf_counter()
    for _ in train_microgpt(docs(), steps, n_embd=16, n_head=4, n_layer=1, block_size=16):
        pass
    per_step = (time.perf_counter() - start) / steps
    return [row("microgpt preset on the scalar engine (microjax)", "scalar_us_per_step", per_step * 1e6, "µs/step")]


# 3. PyTorch eager ---------------------------------------------------------------------------------
def torch_eager(args):
    if not have("torch"):
        return [skipped("microgpt preset in eager PyTorch, float64", "torch_us_per_step", "µs/step", "torch")]
    out = subprocess.run([sys.executable, "-m", "bench.torch_microgpt"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    per_step = float(re.search(r"train_us_per_step ([\d.]+)", out).group(1))
    return [row("microgpt preset in eager PyTorch, float64", "torch_us_per_step", per_step, "µs/step")]


# 4. batched float32 (and bfloat16 with --large) ----------------------------------------------------
def matmul_peak(dtype="float32"):
    """GFLOP/s of one large square matrix product: 1024 on the CPU, 8192 on an accelerator."""
    import jax.numpy as jnp

    n = 1024 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / median_seconds(lambda: f(a).block_until_ready(), 10, warmup=2) / 1e9


def train_flops(model, lengths):
    """Useful FLOPs of one training step on documents of these lengths: 6 per weight per real token
    (forward and two backward products), plus attention over each document's own positions.
    Padding is not counted, so the figure is comparable whatever the layout."""
    c, v, n_layer = model.n_embd, model.vocab_size, model.n_layer
    weights = v * c + 12 * n_layer * c * c  # lm_head, and per layer q, k, v, o and the 4x MLP
    return 6 * weights * lengths.sum() + 6 * 2 * n_layer * c * (lengths.astype(float) ** 2).sum()


BATCHED = [("default model, batch 256", "batched_default_us_per_doc", dict(n_embd=16, n_layer=1, batch_size=256)),
           ("n_embd 64, n_layer 4, batch 64", "batched_64x4_us_per_doc", dict(n_embd=64, n_layer=4, batch_size=64)),
           ("n_embd 128, n_layer 4, batch 128", "batched_128x4_us_per_doc", dict(n_embd=128, n_layer=4, batch_size=128))]
LARGE = [("n_embd 256, n_layer 6, batch 512", "batched_256x6_us_per_doc", dict(n_embd=256, n_layer=6, batch_size=512)),
         ("n_embd 512, n_layer 8, batch 1024", "batched_512x8_us_per_doc", dict(n_embd=512, n_layer=8, batch_size=1024))]


def batched(args):
    from train.lib import devices, run as runs, step
    from train.lib.config import TrainConfig

    jax.config.update("jax_enable_x64", False)
    data, rows = docs(), []
    peak = {"float32": matmul_peak("float32")}
    configs = [(*c, "float32") for c in BATCHED]
    if args.large:
        peak["bfloat16"] = matmul_peak("bfloat16")
        configs += [(*c, d) for c in LARGE for d in ("float32", "bfloat16")]
    cores = len(jax.devices()) if jax.default_backend() == "cpu" else 1  # bench/__main__.py: a device a core
    if cores > 1:  # the default model again, data-parallel over the cores (one device each): both cores at work
        configs.insert(1, (f"default model, batch 256, {cores} CPU devices (JAX_NUM_CPU_DEVICES={cores} --devices "
                           f"{cores})", "batched_default_all_cores_us_per_doc", {**BATCHED[0][2], "devices": cores},
                           "float32"))
    for name, key, kw, dtype in configs:
        kw = dict(kw)
        num_devices = kw.pop("devices", 1)  # one device, as a run gets by default (train/lib/devices.make_mesh)
        run, state = runs.prepare(TrainConfig(rng="jax", n_head=4, chunk=20, dtype=dtype, **kw), data, num_devices)
        chunk = step.make_train_chunk(run)
        idx = runs.batch_indices(run, state.key, 0, run.cfg.chunk)
        ids = runs.step_ids(run, idx)
        carry = [state]

        def go():
            carry[0], losses = chunk(carry[0], *run.data, ids)
            losses.block_until_ready()

        seconds = median_seconds(go, args.reps, warmup=2) / run.cfg.chunk
        b = kw["batch_size"]
        tokens = float(run.lengths[idx].sum()) / run.cfg.chunk
        gflops = train_flops(run.model, run.lengths[idx]) / run.cfg.chunk / seconds / 1e9
        base = None
        if dtype == "float32" and jax.default_backend() == "cpu" and num_devices == 1:
            base = torch_batched(run.model, *devices.to_host(run.data), idx, args.reps)
        rows.append(row(f"batched {dtype}: {name}", key if dtype == "float32" else key + "_bf16",
                        seconds / b * 1e6, "µs/doc", "PyTorch eager" if base else None,
                        base / b * 1e6 if base else None, tokens_per_s=tokens / seconds, gflops=gflops,
                        share_of_matmul_peak=gflops / peak[dtype], matmul_peak_gflops=peak[dtype]))
    return rows


def torch_batched(model, rows, n, idx, reps):
    """Seconds per step of the same model and batches in eager PyTorch, or None without torch."""
    if not have("torch"):
        return None
    import torch

    from .torch_microgpt import make_batched_step

    torch.set_num_threads(1)  # as in the whole job (see bench/torch_microgpt.py): threads spin under load
    _, step = make_batched_step(model.vocab_size, model.n_embd, model.n_head, model.n_layer, model.block_size)
    rows, n = torch.from_numpy(np.asarray(rows)).long(), torch.from_numpy(np.asarray(n)).long()
    batches = [(rows[i], n[i]) for i in torch.from_numpy(idx[:5]).long()]
    return median_seconds(lambda: [step(*b) for b in batches], reps) / len(batches)


# 5. microjax against micrograd ---------------------------------------------------------------------
def micrograd(args):
    if not have("micrograd"):
        return [skipped("micrograd demo (2-16-16-1 MLP, 100 points), forward + backward", "micrograd_time_ratio",
                        "ms/pass", "micrograd")]
    from micrograd.nn import MLP

    from microjax import value_and_grad
    from train.lib.lesson import demo_loss, micrograd_pass, moons, params_from_micrograd

    def microjax_pass(params, xs, ys):  # forward and backward: fresh gradients, no zero_grad
        return value_and_grad(demo_loss)(params, xs, ys)[0]

    random.seed(0)
    model = MLP(2, [16, 16, 1])
    xs, ys = moons()
    params = params_from_micrograd(model)
    assert abs(micrograd_pass(model, xs, ys) - microjax_pass(params, xs, ys)) < 1e-9  # the same computation
    ours = median_seconds(lambda: microjax_pass(params, xs, ys), args.reps)
    theirs = median_seconds(lambda: micrograd_pass(model, xs, ys), max(3, args.reps // 2))
    return [row("micrograd demo (2-16-16-1 MLP, 100 points), forward + backward", "micrograd_time_ratio",
                ours * 1e3, "ms/pass", "micrograd 0.1.0", theirs * 1e3)]


# 6. sampling --------------------------------------------------------------------------------------
def sampling(args):
    from train.lib import devices, run as runs
    from train.lib.config import TrainConfig
    from train.lib.sampling import sample_jax, sample_python

    jax.config.update("jax_enable_x64", False)
    run, state = runs.prepare(TrainConfig(rng="jax", steps=1), docs())
    params = devices.to_host(state.params)
    key = jax.random.PRNGKey(0)
    n = 10_000
    ours = median_seconds(lambda: sample_jax(params, run.model, run.tokenizer, key, n, 0.5), args.reps)
    m = 200
    base = median_seconds(lambda: sample_python(params, run.model, run.tokenizer, random.Random(0), m, 0.5),
                          max(3, args.reps // 2))
    return [row("sampling 10,000 names (KV cache, scan + vmap)", "sampling_names_per_s", n / ours, "names/s",
                "one jitted decode step per token", m / base, faster_is="higher")]


def engine(args):
    """The scalar engine alone (bench/engine_cases.py)."""
    from .engine_cases import run

    return run(args)


def jit(args):
    """microjax's jit against its own graph and against micrograd (bench/engine_cases.py)."""
    from .engine_cases import run_jit

    return run_jit(args)


# 9. nanoGPT's Shakespeare on the CPU (long: not in the default list) ----------------------------------
def shakespeare(args):
    """The shakespeare-char-cpu preset's whole run, launch to exit, beside the same model and training in
    eager PyTorch (bench/torch_shakespeare.py) in the same run: wall time, ms per iteration and the
    val loss over the whole validation split at the last step. SHAKESPEARE_STEPS shortens both runs."""
    steps = os.environ.get("SHAKESPEARE_STEPS", "2000")
    with tempfile.TemporaryDirectory() as tmp:
        metrics = os.path.join(tmp, "m.jsonl")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "train.gpt", "--preset", "shakespeare-char-cpu", "--steps", steps,
                        "--num-samples", "0", "--metrics-file", metrics], cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in open(metrics)]
    # the trainer's rate per dispatch of 250 steps, those that compiled left out: training alone, no start-up
    rates = [r["tokens_per_second"] for r in rows if "tokens_per_second" in r]
    ms_per_iter = 1000 * 12 * 64 / statistics.median(rates) if rates else None  # none if one dispatch ran
    last = next(r for r in reversed(rows) if "val_whole" in r)  # the last evaluation
    theirs = {}
    if have("torch"):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "bench.torch_shakespeare", "--steps", steps], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        theirs = {"wall": time.perf_counter() - start,
                  **{k: float(v) for k, v in re.findall(r"(ms_per_iter|val_whole|val) ([\d.]+)", out)}}
    base = "PyTorch eager, same model" if theirs else None
    return [row(f"shakespeare-char-cpu, {steps} iterations, launch to exit", "shakespeare_cpu_s", wall, "s", base,
                theirs.get("wall")),
            row("  per iteration (training)", "shakespeare_cpu_ms_per_iter", ms_per_iter, "ms", base,
                theirs.get("ms_per_iter") if ms_per_iter else None),
            # beside it nanoGPT's figure, the mean of 20 random batches, for ours and theirs
            row("  val loss, whole validation split", "shakespeare_cpu_val", last["val_whole"], "nats", base,
                theirs.get("val_whole"), faster_is=None, val_estimate=last["val_loss"],
                baseline_val_estimate=theirs.get("val"))]


ALL = {"preset": preset, "scalar": scalar, "torch": torch_eager, "batched": batched, "micrograd": micrograd,
       "sampling": sampling, "engine": engine, "jit": jit}
LONG = {"shakespeare": shakespeare}  # minutes each: run by name (--cases shakespeare), never by default
