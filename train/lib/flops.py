"""Model FLOPs utilization: the FLOPs a token costs as the PaLM paper and nanoGPT count them, against the
device's peak: a table of known accelerators' dense peaks, and on a CPU its measured matmul rate.

Per token, training (forward and backward) costs 6N FLOPs for the N parameters of the matrix products
(every weight but the two lookup tables wte and wpe; lm_head is a product here, not tied to wte), plus
12 * n_layer * n_embd * T for attention's scores and weighted sums over a context of T (PaLM, appendix
B; nanoGPT's `estimate_mfu`). The figure counts the model's work, not what the implementation spends
(recomputation, masked positions, Adam), so it compares across implementations.
"""

import json
import os
import platform
import time

# Dense (no sparsity) peak FLOP/s by device kind, for bfloat16 and float32 matrix products, from the
# vendors' data sheets. A kind matches when its name contains the key (longest key first).
PEAKS = {
    "H100 PCIe": {"bfloat16": 756e12, "float32": 51e12},
    "H100": {"bfloat16": 989e12, "float32": 67e12},  # SXM
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "GH200": {"bfloat16": 989e12, "float32": 67e12},
    "B200": {"bfloat16": 2250e12, "float32": 80e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
    "A10G": {"bfloat16": 70e12, "float32": 31.2e12},
    "L4": {"bfloat16": 121e12, "float32": 30.3e12},
    "TPU v4": {"bfloat16": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12},
    "TPU v5e": {"bfloat16": 197e12},
    "TPU v5p": {"bfloat16": 459e12},
    "TPU v6": {"bfloat16": 918e12},
}
MATMUL_SIZE = 512  # the CPU rate: one (512, 512) @ (512, 512) product, best of a few


def flops_per_token(model):
    """Training FLOPs per token of `model` (a models.gpt.GPTConfig), context block_size."""
    from models import gpt

    n = sum(a * b for name, (a, b) in gpt.param_shapes(model).items() if name not in ("wte", "wpe"))
    return 6 * n + 12 * model.n_layer * model.n_embd * model.block_size


def table_peak(kind, dtype):
    """The data sheet's dense peak for a device kind and dtype name, or None."""
    for key in sorted(PEAKS, key=len, reverse=True):
        if key.lower() in kind.lower():
            return PEAKS[key].get(dtype)
    return None


def peak(device, dtype, measure=True):
    """(FLOP/s, label) for one device and a dtype name: the table's peak, or on a CPU the measured matmul
    rate (cached per CPU model, dtype and jax version, so it is measured once per machine, about 0.3 s;
    with `measure` false, only a cached rate); (None, why) when neither is known."""
    if device.platform == "cpu":
        rate = cpu_matmul_rate(dtype, None if measure else (lambda _: None))
        return rate, "measured CPU matmul rate" if rate else "the CPU's matmul rate is not measured yet"
    value = table_peak(device.device_kind, dtype)
    if value is None:
        return None, f"no peak known for {device.device_kind} {dtype}"
    return value, f"{device.device_kind} dense {dtype} peak"


def _cache_file():
    from .data import cache_dir

    return cache_dir() / "matmul-rate.json"


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_matmul_rate(dtype, measure=None):
    """FLOP/s of one jitted float matrix product on the CPU device, from the cache or measured (about
    0.3 s) and cached. `measure` replaces the measurement (tests; one that answers None caches nothing)."""
    import jax

    key = f"{_cpu_name()} | {os.cpu_count()} cpus | jax {jax.__version__} | {dtype}"
    path = _cache_file()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached, dict) and isinstance(cached.get(key), (int, float)):
        return float(cached[key])
    rate = (measure or _measure)(dtype)
    if rate is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**(cached if isinstance(cached, dict) else {}), key: rate}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the measurement again
    return rate


def _measure(dtype):
    import jax
    import jax.numpy as jnp

    n = MATMUL_SIZE
    a = jnp.ones((n, n), getattr(jnp, dtype))
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def mfu(tokens_per_second, model, peak_flops, devices):
    """Model FLOPs utilization: achieved model FLOP/s over the peak of all `devices` together."""
    if not peak_flops:
        return None
    return tokens_per_second * flops_per_token(model) / (peak_flops * devices)
