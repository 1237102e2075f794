"""The sharding rules, the sharded checkpoint format and the FLOPs count, as library functions.
The trainer's sharded runs (equal losses, resharding resumes) are in tests/test_distributed.py."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from models import gpt
from train.lib import flops, sharding
from train.lib.errors import UserError

from .helpers import ROOT

WIDE = gpt.GPTConfig(27, 128, 8, 4, 16)  # the model the equality tests shard


def fake_mesh(**sizes):
    return SimpleNamespace(shape={a: sizes.get(a, 1) for a in sharding.AXES})


def test_parse_mesh_fills_unnamed_axes_and_refuses_bad_text():
    assert sharding.parse_mesh("model=4,data=2") == {"data": 2, "fsdp": 1, "model": 4}
    assert sharding.parse_mesh("fsdp=8") == {"data": 1, "fsdp": 8, "model": 1}
    for bad, says in (("pipe=2", "axes: data, fsdp, model"), ("data=2,data=2", "given twice"),
                      ("data=0", "integer >= 1"), ("data=x", "integer >= 1"), ("data", "axis=size"),
                      ("", "axis=size")):
        with pytest.raises(UserError, match=says):
            sharding.parse_mesh(bad)


def test_megatron_and_fsdp_rules():
    specs, whole = sharding.param_specs(gpt.param_shapes(WIDE), WIDE.n_head, fake_mesh(data=2, fsdp=2, model=2))
    assert specs["layer0.attn_wq"] == P("model", "fsdp")  # by heads (its output)
    assert specs["layer3.attn_wo"] == P("fsdp", "model")  # by its input
    assert specs["layer1.mlp_fc1"] == P("model", "fsdp") and specs["layer1.mlp_fc2"] == P("fsdp", "model")
    assert specs["wte"] == P(None, "fsdp") and specs["lm_head"] == P(None, "fsdp")  # vocab 27 is odd
    assert specs["wpe"] == P("fsdp")
    assert whole == dict.fromkeys(("wte", "wpe", "lm_head"), "tables: whole over model, split over fsdp")
    assert sharding.gathered(P("model", "fsdp")) == P("model", None)


def test_small_and_indivisible_leaves_stay_whole_and_are_named():
    model = gpt.GPTConfig(27, 48, 6, 2, 16)  # 6 heads do not split 4 ways; 48 * 4 = 192 does
    specs, whole = sharding.param_specs(gpt.param_shapes(model), model.n_head, fake_mesh(model=4))
    assert specs["layer0.attn_wq"] == P() and "6 heads not divisible by model=4" in whole["layer0.attn_wq"]
    assert specs["layer0.mlp_fc1"] == P("model") and "layer0.mlp_fc1" not in whole
    specs, whole = sharding.param_specs(gpt.param_shapes(gpt.GPTConfig()), 4, fake_mesh(fsdp=8))
    # microgpt's tables and attention matrices are under MIN_SHARDED numbers; its MLP's (64 x 16) are not
    assert all(s == P() for k, s in specs.items() if "mlp" not in k) and specs["layer0.mlp_fc1"] == P(None, "fsdp")
    assert whole["wte"] == "small, whole over fsdp"
    assert sharding.layer_pattern(["wte", "layer0.a", "layer1.a", "layer1.b"]) == ["wte", "layer*.a", "layer1.b"]


def test_flops_per_token_counts_the_products_and_attention():
    # 4 layers of 12 C^2 weights, lm_head V x C; attention 12 L C T
    c, layers, v, t = 128, 4, 27, 16
    assert flops.flops_per_token(WIDE) == 6 * (layers * 12 * c * c + v * c) + 12 * layers * c * t
    assert flops.table_peak("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert flops.table_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert flops.table_peak("TPU v4", "float32") is None and flops.table_peak("Quantum", "bfloat16") is None
    assert flops.mfu(1000.0, WIDE, 1e12, 2) == pytest.approx(1000 * flops.flops_per_token(WIDE) / 2e12)


@pytest.mark.slow  # it measures the real rate once, too
def test_cpu_matmul_rate_is_measured_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    measure = lambda dtype: calls.append(dtype) or 5e10  # noqa: E731
    assert flops.cpu_matmul_rate("float32", measure) == 5e10
    assert flops.cpu_matmul_rate("float32", measure) == 5e10
    assert calls == ["float32"]
    assert flops.cpu_matmul_rate("float64", measure) == 5e10 and calls == ["float32", "float64"]
    (tmp_path / "microjax" / "matmul-rate.json").write_text("not json")
    assert flops.cpu_matmul_rate("float32", measure) == 5e10 and len(calls) == 3
    assert flops._measure("float32") > 1e8  # a real product on this CPU: over 0.1 GFLOP/s


EIGHT_DEVICES = r"""
import json, os, sys
import jax, numpy as np, optax
from jax.sharding import NamedSharding, PartitionSpec as P
from models import gpt
from train.lib import sharding, shards
from train.lib.errors import UserError

out = sys.argv[1]
model = gpt.GPTConfig(27, 128, 8, 4, 16)
params = gpt.init(jax.random.PRNGKey(0), model)
optimizer = optax.adam(1e-3)
held = {}
for text in ("data=8", "fsdp=2", "fsdp=8", "model=4,data=2", "data=2,fsdp=2,model=2"):
    mesh = sharding.make_mesh(sharding.parse_mesh(text))
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,) * 3
    specs, whole = sharding.param_specs(gpt.param_shapes(model), model.n_head, mesh)
    where = sharding.shardings(mesh, specs)
    p = jax.device_put(params, where)
    s = jax.jit(optimizer.init, out_shardings=sharding.opt_shardings(optimizer, where, mesh))(p)
    assert s[0].mu["layer0.attn_wq"].sharding.spec == specs["layer0.attn_wq"]
    held[text] = max(sharding.bytes_per_device(p, s).values())
    line = sharding.describe(mesh, p, s, whole)
    print(line)
    if text == "fsdp=8":
        shards.save(out, {**{f"params['{k}']": v for k, v in p.items()}}, {"step": 5}, host={"h": np.arange(4.0)})
total = 3 * 4 * gpt.num_params(model) + 2 * 4 * 0  # params, mu, nu in float32 (+ the int32 counts)
assert held["data=8"] >= total, held
assert held["fsdp=8"] < held["fsdp=2"] < held["data=8"], held
assert held["fsdp=8"] <= total / 8 + 1024, held  # 1/8 of every matrix, counts replicated
assert held["model=4,data=2"] < held["data=8"] / 3, held
print(json.dumps(held))

# the checkpoint written on fsdp=8 read back on other meshes and on one device
src = shards.Source(out)
assert src.meta == {"step": 5} and np.array_equal(src["h"], np.arange(4.0)) and len(src) == 28
for text in ("data=2,fsdp=2,model=2", "model=4,data=2", "data=1"):
    mesh = sharding.make_mesh(sharding.parse_mesh(text)) if text != "data=1" else None
    for k, v in params.items():
        name = f"params['{k}']"
        where = (NamedSharding(mesh, P(*sharding.param_specs({k: v.shape}, 8, mesh)[0][k]))
                 if mesh else jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        a = jax.make_array_from_callback(src.shape(name), where, lambda i: src.read(name, i))
        assert np.array_equal(np.asarray(a), np.asarray(v)), (text, name)
files = os.listdir(os.path.join(out, "shards"))
assert len(files) == 1, files
try:
    sharding.make_mesh(sharding.parse_mesh("fsdp=16"))
except UserError as e:
    print("error:", e)
print("ok")
"""


@pytest.mark.slow  # a subprocess on 8 forced CPU devices
def test_meshes_divide_the_memory_and_checkpoints_reshard(tmp_path):
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8"}
    done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, str(tmp_path / "ck")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "ok"
    assert "error: --mesh fsdp=16 takes 16 devices; this run has 8" in lines
    assert lines[2].startswith("mesh fsdp=8 | params + optimizer state per device: ")


def test_damaged_or_foreign_sharded_checkpoints_are_refused(tmp_path):
    import json

    import jax

    from train.lib import shards

    x = jax.numpy.arange(4096.0).reshape(64, 64)
    shards.save(tmp_path, {"x": x}, {"step": 1})
    src = shards.Source(tmp_path)
    assert np.array_equal(src.read("x", (slice(1, 3), slice(None))), np.arange(64.0, 192.0).reshape(2, 64))
    (file,) = (tmp_path / "shards").iterdir()
    blob = bytearray(file.read_bytes())
    blob[-1] ^= 1  # one bit of the data
    file.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="does not match its checksum"):
        shards.Source(tmp_path).read("x")
    manifest = json.loads((tmp_path / "checkpoint.json").read_text())
    manifest["meta"]["step"] = 2
    (tmp_path / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="manifest does not match its checksum"):
        shards.Source(tmp_path)
    (tmp_path / "checkpoint.json").write_text('{"format": "other"}')
    with pytest.raises(UserError, match="damaged or foreign"):
        shards.Source(tmp_path)


def test_optimizer_state_reads_flat_or_per_parameter_either_way():
    from jax.flatten_util import ravel_pytree

    from train.lib import shards

    rng = np.random.default_rng(0)
    tree = {"wte": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,)), "a": rng.normal(size=(2, 2))}
    flat = np.asarray(ravel_pytree(tree)[0])
    layout = [(k, tree[k].shape) for k in sorted(tree)]
    as_flat = {"opt[0].mu": flat}
    as_tree = {f"opt[0].mu['{k}']": v for k, v in tree.items()}
    for k, v in tree.items():
        np.testing.assert_array_equal(shards.read_leaf(as_flat, f"opt[0].mu['{k}']", None, layout), v)
    np.testing.assert_array_equal(shards.read_leaf(as_tree, "opt[0].mu", (slice(2, 9),), layout), flat[2:9])
    with pytest.raises(KeyError):
        shards.read_leaf(as_tree, "opt[0].nu", None, layout)
