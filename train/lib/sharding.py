"""Meshes beyond data parallelism: `--mesh data=D,fsdp=F,model=M`, and where every parameter lives on it.

The mesh has three named axes. `data` and `fsdp` both split the batch; `fsdp` also splits every large
parameter and its Adam moments (ZeRO-3: each device keeps 1/F of them and the step all-gathers a
matrix just before using it, then reduce-scatters its gradient); `model` splits the transformer's
matrices as Megatron does: q, k and v by their output (whole heads per device), the attention's output
projection by its input, fc1 by its output and fc2 by its input, so each block needs one all-reduce
forward. Weights are (out, in), as `models.gpt.linear` computes W @ x. A leaf that is small, or whose
dimension does not divide by its axis, stays whole (replicated) along that axis, and `describe` names it.

The axis types are pinned to Auto (the compiler propagates shardings from the parameters and the few
constraints below): `jax.make_mesh`'s default changed to Explicit in newer JAX.
"""

import math
from collections import Counter

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from .errors import UserError

AXES = ("data", "fsdp", "model")
BATCH = ("data", "fsdp")  # the axes the batch is split over
# Below this many numbers a matrix is replicated: gathering it would cost a collective a step to save
# a few KiB.
MIN_SHARDED = 1024
# (out, in) of each block matrix: which axis splits which dimension. Embedding tables get fsdp only.
MEGATRON = {"attn_wq": ("model", "fsdp"), "attn_wk": ("model", "fsdp"), "attn_wv": ("model", "fsdp"),
            "attn_wo": ("fsdp", "model"), "mlp_fc1": ("model", "fsdp"), "mlp_fc2": ("fsdp", "model")}
HEADS = ("attn_wq", "attn_wk", "attn_wv", "attn_wo")  # their model split must keep heads whole


def parse_mesh(text):
    """'data=2,fsdp=2,model=2' (any subset, any order) -> {"data": 2, "fsdp": 2, "model": 2}, 1 where unnamed."""
    sizes = dict.fromkeys(AXES, 1)
    seen = set()
    for part in str(text).split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name not in AXES:
            raise UserError(f"--mesh {text}: expected axis=size pairs such as data=2,fsdp=2,model=2 "
                            f"(axes: {', '.join(AXES)})")
        if name in seen:
            raise UserError(f"--mesh {text}: axis {name} given twice")
        if not value.isdigit() or not 1 <= int(value) <= 65536:
            raise UserError(f"--mesh {text}: the size of {name} must be an integer >= 1, got {value!r}")
        seen.add(name)
        sizes[name] = int(value)
    return sizes


def mesh_text(mesh):
    """'data=2, fsdp=2, model=2', the axes of size > 1 (or 'data=1')."""
    parts = [f"{a}={n}" for a, n in mesh.shape.items() if n > 1]
    return ", ".join(parts) or f"{mesh.axis_names[0]}=1"


def make_mesh(sizes, num_devices=None):
    """The 3-axis mesh of `sizes` over the first prod(sizes) devices. With several processes the mesh
    must hold every device (each process feeds its own); `num_devices`, when given, must agree."""
    need = math.prod(sizes.values())
    devices = jax.devices()
    asked = ",".join(f"{a}={n}" for a, n in sizes.items() if n > 1) or "data=1"
    if num_devices is not None and num_devices != need:
        raise UserError(f"--mesh {asked} takes {need} device(s), but --devices {num_devices} was given")
    if need > len(devices):
        raise UserError(f"--mesh {asked} takes {need} devices; this run has {len(devices)}")
    if jax.process_count() > 1 and need != len(devices):
        raise UserError(f"--mesh {asked} takes {need} devices: with {jax.process_count()} processes the mesh "
                        f"must hold all {len(devices)}")
    return jax.make_mesh(tuple(sizes[a] for a in AXES), AXES, axis_types=(AxisType.Auto,) * len(AXES),
                         devices=devices[:need])


def is_sharded(mesh):
    """Does this mesh split parameters (fsdp or model above 1), rather than only the batch?"""
    return any(mesh.shape.get(a, 1) > 1 for a in ("fsdp", "model"))


def batch_axes(mesh):
    """The mesh axes a batch is split over: ("data",) for the 1-D data-parallel mesh."""
    return tuple(a for a in BATCH if a in mesh.axis_names)


def batch_size_divisor(mesh):
    return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def param_specs(shapes, n_head, mesh):
    """({name: PartitionSpec}, {name: why it is whole along an axis that splits parameters}) for
    parameters of `shapes` ({name: shape}, as `models.gpt.param_shapes` gives them) on `mesh`."""
    size = {a: mesh.shape.get(a, 1) for a in AXES}
    specs, whole = {}, {}
    for name, shape in shapes.items():
        kind = name.rsplit(".", 1)[-1]
        wanted = MEGATRON.get(kind)
        if wanted is None:  # an embedding table: fsdp over whichever dimension divides
            wanted = ("fsdp", None) if shape[0] % size["fsdp"] == 0 else (None, "fsdp")
        dims, why = [], []
        for dim, axis in zip(shape, wanted):
            if axis is None or size[axis] == 1:
                dims.append(None)
            elif math.prod(shape) < MIN_SHARDED:
                dims.append(None)
                why.append(f"small, whole over {axis}")
            elif dim % size[axis] or (axis == "model" and kind in HEADS and n_head % size[axis]):
                dims.append(None)
                what = f"{n_head} heads" if axis == "model" and kind in HEADS else f"{dim}"
                why.append(f"{what} not divisible by {axis}={size[axis]}")
            else:
                dims.append(axis)
        if kind not in MEGATRON and size["model"] > 1 and not why:
            why.append("tables: whole over model" + (", split over fsdp" if "fsdp" in dims else ""))
        while dims and dims[-1] is None:  # P('fsdp') rather than P('fsdp', None): one spelling each
            dims.pop()
        specs[name] = P(*dims)
        if why:
            whole[name] = "; ".join(dict.fromkeys(why))
    return specs, whole


def gathered(spec):
    """The spec a parameter is used in: its fsdp split gathered (ZeRO-3), its model split kept."""
    return P(*(None if axis == "fsdp" else axis for axis in spec))


def shardings(mesh, specs):
    return {name: NamedSharding(mesh, spec) for name, spec in specs.items()}


def opt_shardings(optimizer, params_shardings, mesh):
    """The optax state's shardings for parameters laid out by `params_shardings` ({name:
    NamedSharding}): every moment shaped like a parameter is laid out like it, the rest (step counts)
    replicated."""
    import optax

    state = jax.eval_shape(optimizer.init, {k: jax.ShapeDtypeStruct((1,) * len(s.spec), np.float32)
                                            for k, s in params_shardings.items()})
    return optax.tree_map_params(optimizer, lambda _, s: s, state, params_shardings,
                                 transform_non_params=lambda _: NamedSharding(mesh, P()),
                                 is_leaf=lambda x: isinstance(x, NamedSharding))


def bytes_per_device(*trees):
    """{device: bytes} of the arrays' shards each local device holds: what the mesh costs it."""
    held = Counter()
    for leaf in jax.tree.leaves(trees):
        for shard in leaf.addressable_shards:
            held[shard.device] += shard.data.nbytes
    return held


def layer_pattern(names):
    """'layer0.attn_wq', 'layer1.attn_wq' -> 'layer*.attn_wq' when every layer has it; for messages."""
    kinds = Counter(n.split(".", 1)[1] for n in names if n.startswith("layer"))
    layers = {n.split(".", 1)[0] for n in names if n.startswith("layer")}
    out = [n for n in names if not n.startswith("layer")]
    for n in names:
        if n.startswith("layer"):
            kind = n.split(".", 1)[1]
            if kinds[kind] == len(layers) and len(layers) > 1:
                if f"layer*.{kind}" not in out:
                    out.append(f"layer*.{kind}")
            else:
                out.append(n)
    return out


def describe(mesh, params, opt_state, whole):
    """The start-up line's mesh part: axes, the bytes of parameters + optimizer state on the fullest
    device against the whole model, and the leaves left whole."""
    held = bytes_per_device(params, opt_state)
    total = sum(np.dtype(x.dtype).itemsize * math.prod(x.shape) for x in jax.tree.leaves((params, opt_state)))
    text = (f"mesh {mesh_text(mesh)} | params + optimizer state per device: {_size(max(held.values()))} "
            f"(of {_size(total)})")
    if whole:
        reasons = {}
        for name, why in whole.items():
            reasons.setdefault(why, []).append(name)
        text += " | replicated: " + "; ".join(f"{', '.join(layer_pattern(names))} ({why})"
                                             for why, names in reasons.items())
    return text


def _size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"
