"""python -m bench: how fast microjax trains and samples, against the baselines users would pick.

Every figure is the median of several timed repetitions after a warm-up, next to a baseline measured
in the same run, and their ratio, always our time over theirs (below 1: ours is faster). `--json PATH`
writes the same rows with the machine and library versions; bench/README.md keeps the runs so far.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the whole-job runs share the accelerator

from train.cli import ArgumentParser, number, output_file, run as run_cli  # noqa: E402

from . import cases  # noqa: E402  (imports jax)

TARGETS = {  # the project's speed goals on its 2-core CPU machine: key -> (at most, which figure)
    "preset_us_per_step": (25, "value"), "preset_long_us_per_step": (18, "value"),
    "batched_default_all_cores_us_per_doc": (5, "value"), "batched_64x4_us_per_doc": (60, "value"),
    "whole_job_warm_s": (0.6, "value"), "whole_job_cold_s": (1.5, "value"),
    # issue 17: half nanoGPT's 56.9 s for the same run, and its published val loss (bench/README.md)
    "shakespeare_cpu_s": (28, "value"), "shakespeare_cpu_val": (1.88, "value"),
}
# The fastest public microgpt ports, for where microjax stands. They are not built or run here: these are
# their figures from interleaved runs of their own, each on the machine and day it names (the project's
# machines change: set them beside this run's `machine:` line). key of our row -> [(name, value, where)].
EPYC = "this project's 2-core CPU machine class (AMD EPYC, KVM), 2026-11-24"
XEON = "a 2-vCPU Intel Xeon (AVX-512, KVM), 2026-12-02 (issue 20)"
EE_BATCHED = [("EEmicroGPT batched (float32, 16 docs/step)", 6.5, EPYC),
              ("EEmicroGPT batched (float32, 256 docs/step)", 5.7, XEON)]
ANCHORS = {
    "preset_long_us_per_step": [("EEmicroGPT (hand-written C, float32, fast exp), 1 doc/step", 13.7, EPYC),
                                ("EEmicroGPT (hand-written C, float32, fast exp), 1 doc/step", 9.0, XEON),
                                ("enjector/microgpt-c (C99, float64), 1 doc/step", 26.0, EPYC),
                                ("chanjoongx/microgpt-efficiency (NumPy, float64, hand-written backward)", 270.0, EPYC)],
    "preset_us_per_step": [("EEmicroGPT (hand-written C, float32, fast exp), 1 doc/step", 9.0, XEON)],
    "batched_default_us_per_doc": EE_BATCHED,
    "batched_default_all_cores_us_per_doc": EE_BATCHED,
}


def machine():
    import jax

    info = {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    for name in ("jaxlib", "optax", "numpy", "torch", "micrograd"):
        try:
            info[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            info[name] = None
    try:
        info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if "model name" in l)
    except (OSError, StopIteration):
        pass
    return info


def print_table(rows):
    head = ("case", "microjax", "baseline", "baseline value", "ours / theirs (time)", "target")
    table = [head] + [(r["case"], fmt(r["value"], r["unit"]), r.get("baseline") or "-",
                       fmt(r.get("baseline_value"), r["unit"]), ratio(r),
                       target_text(r)) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("-|-".join("-" * w for w in widths))


def ratio(row):
    return "-" if row.get("time_ratio") is None else f"{row['time_ratio']:.2g}"


def fmt(value, unit):
    if value is None:
        return "-"
    return f"{value:,.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def target_text(row):
    if row.get("key") not in TARGETS:
        return ""
    limit, field = TARGETS[row["key"]]
    value = row.get(field)
    if value is None:
        return f"<= {limit} (no baseline)"
    shown = f"{value:.2f} of the baseline's time" if field == "time_ratio" else ""
    return f"<= {limit}{' of the time' if field == 'time_ratio' else ''} ({shown + ', ' if shown else ''}" \
           f"{'met' if value <= limit else 'not met'})"


def with_anchors(rows):
    """Each row that has anchors, followed by one row per anchor: its figure, not measured in this run
    but on the machine it names, and our time over its (below 1: ours is faster)."""
    out = []
    for r in rows:
        out.append(r)
        for name, value, where in ANCHORS.get(r.get("key"), []) if r.get("value") else []:
            out.append({"case": f"  anchor: {name}", "key": None, "value": value, "unit": r["unit"],
                        "baseline": f"measured on {where}, not in this run", "baseline_value": None,
                        "time_ratio": r["value"] / value})
    return out


def case_list(text):
    """--cases: a comma-separated subset of the cases, in the order given."""
    names = text.split(",")
    known = {**cases.ALL, **cases.LONG}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def build_parser():
    p = ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--cases", type=case_list, default=list(cases.ALL),
                   help=f"comma-separated subset of {','.join(cases.ALL)} (all of them by default), or the long "
                        f"case{'s' if len(cases.LONG) > 1 else ''} {','.join(cases.LONG)}")
    p.add_argument("--large", action="store_true", help="add larger batched models and bfloat16 (for accelerators)")
    p.add_argument("--reps", type=number(int, 1, 1000), default=5, help="timed repetitions per figure (5)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    output_file(args.json, "--json")
    if "JAX_NUM_CPU_DEVICES" not in os.environ:
        # One CPU device a core in this process (not in the runs it starts), so that the batched case can
        # also run data-parallel over all of them; every other case asks for one device, as runs get by
        # default. Too late once JAX has started (bench called from a process that already ran JAX).
        try:
            cases.jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
        except RuntimeError:
            pass
    start, rows, load = time.perf_counter(), [], os.getloadavg()
    for name in args.cases:
        print(f"# {name}", file=sys.stderr, flush=True)
        rows.extend({**cases.ALL, **cases.LONG}[name](args))
    rows = with_anchors(rows)
    info = machine()
    # the 1, 5 and 15 minute load averages before and after: other work on the machine slows every figure
    info["load_average"] = {"start": load, "end": os.getloadavg()}
    # set here, it slows this process's imports; the commands the cases run go without it (cases.user_env)
    info["PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
    print(f"\nmachine: {info.get('cpu_model', info['processor'])}, {info['cpus']} cpus, devices {info['devices']}, "
          f"jax {info['jax']}, torch {info['torch']}; median of {args.reps}; benchmark took "
          f"{time.perf_counter() - start:.0f} s\n")
    print_table(rows)
    by_key = {r["key"]: r["value"] for r in rows}
    jitted = by_key.get("preset_us_per_step")
    for key, name in (("scalar_us_per_step", "the scalar twin on microjax"), ("torch_us_per_step", "eager PyTorch")):
        if jitted and by_key.get(key):
            print(f"\nthe jitted microgpt step takes {jitted / by_key[key]:.2g} of the time of {name}", end="")
    print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "reps": args.reps, "targets": TARGETS, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    run_cli(main)
