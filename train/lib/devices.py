"""Devices: the 1-D data-parallel mesh, placing arrays on it (from one process or several), and
joining a multi-process run. Everything here is JAX's own machinery: `jax.sharding`, `jax.distributed`."""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .errors import UserError


def init_distributed():
    """Join a multi-process run when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are set."""
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not address:
        return False
    try:
        count, index = int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"])
    except (KeyError, ValueError):
        raise UserError("JAX_COORDINATOR_ADDRESS is set: also set JAX_NUM_PROCESSES and JAX_PROCESS_ID") from None
    if jax.config.jax_platforms in (None, "", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    return True


def make_mesh(num_devices=None, batch_size=None):
    """The 1-D mesh (axis "data") of the first `num_devices` devices, by default all of them; a run of
    one document a step in one process takes one device, since a single document cannot be split.
    `batch_size` must divide over the devices: otherwise a UserError says which count would do."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise UserError(f"--devices {num_devices}: this run has {len(devices)} device(s)")
        devices = devices[:num_devices]
    elif batch_size == 1 and jax.process_count() == 1:
        devices = devices[:1]
    if batch_size is not None and batch_size % len(devices):
        n = len(devices)
        fits = max(d for d in range(1, n + 1) if batch_size % d == 0)
        where = f" (JAX_NUM_CPU_DEVICES={os.environ['JAX_NUM_CPU_DEVICES']} is set)" if os.environ.get(
            "JAX_NUM_CPU_DEVICES") else ""
        raise UserError(f"batch size {batch_size} does not divide over {n} devices{where}; use a multiple of {n} "
                        f"or --devices {fits}")
    return Mesh(np.array(devices), ("data",))


def is_main_process():
    """Process 0 alone prints and writes files in a multi-process run."""
    return jax.process_index() == 0


def put(tree, sharding):
    """Host arrays -> global arrays laid out by `sharding` (one for every leaf, or a tree of them shaped
    like `tree`); works with several processes too."""
    if isinstance(sharding, jax.sharding.Sharding):
        sharding = jax.tree.map(lambda _: sharding, tree)
    return jax.tree.map(lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda i: np.asarray(x)[i]),
                        tree, sharding)


def to_host(tree):
    """Global arrays -> numpy: a replicated one from this process's own copy, a sharded one gathered
    (from every process, when its shards span several)."""
    def one(a):
        if not isinstance(a, jax.Array) or a.sharding.is_fully_replicated:
            return np.asarray(a.addressable_data(0) if isinstance(a, jax.Array) else a)
        if a.is_fully_addressable:
            return np.asarray(a)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(one, tree)


def batch_sharding(mesh, lead=0):
    """The batch axis split over the mesh's batch axes (`data`, and `fsdp` where the mesh has one): axis 0
    of a (R, ...) batch, axis `lead` when axes come before it: 1 of (K, R, ...) step arrays, 2 of
    (K, accum, R, ...) ones."""
    axes = tuple(a for a in ("data", "fsdp") if a in mesh.axis_names)
    return NamedSharding(mesh, P(*[None] * lead, axes))
