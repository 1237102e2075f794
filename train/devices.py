"""Devices: the 1-D data-parallel mesh, placing arrays on it (from one process or several), and
joining a multi-process run. Everything here is JAX's own machinery: `jax.sharding`, `jax.distributed`."""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .cli import UserError


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


def make_mesh(num_devices=None):
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise UserError(f"--devices {num_devices}: this run has {len(devices)} device(s)")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), ("data",))


def put(tree, sharding):
    """Host arrays -> global arrays laid out by `sharding`; works with several processes too."""
    return jax.tree.map(lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda i: np.asarray(x)[i]),
                        tree)


def to_host(tree):
    """Replicated global arrays -> numpy, reading this process's own copy."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def batch_sharding(mesh, per_step=False):
    """The batch axis split over the mesh: axis 0 of a (R, ...) batch, axis 1 of (K, R, ...) step arrays."""
    return NamedSharding(mesh, P(None, "data") if per_step else P("data"))
