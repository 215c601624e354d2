"""Sharding the replicate axis over devices: a 1-D mesh named ``replica``, data replicated.

Every stacked pytree (states, masks) carries replicates (or copies) on axis 0. With ``D`` devices
of this process (``jax.local_devices()``: replicates never talk to each other) and ``R``
replicates the axis is split over the largest ``d <= D`` that divides ``R`` (all of them when
``R`` is a multiple of ``D``; one device, i.e. no sharding, when only 1 divides). The jitted
programs follow their inputs' shardings (``jax.jit`` with ``NamedSharding``, no ``pmap``): each
device trains its replicates, and the dataset is replicated on every device.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "replica"
PyTree = Any


def replica_mesh(num_replicates: int, devices=None) -> Mesh | None:
    """The mesh the replicate axis is sharded over, or ``None`` when one device is used."""
    devices = list(devices if devices is not None else jax.local_devices())
    count = max(d for d in range(1, len(devices) + 1) if num_replicates % d == 0)
    if count <= 1:
        return None
    return Mesh(np.array(devices[:count]), (AXIS,))


def shard_replicas(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Puts every leaf's axis 0 across the mesh (leaves whose axis 0 does not divide stay whole)."""
    if mesh is None:
        return tree
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    size = mesh.shape[AXIS]

    def place(x):
        divisible = getattr(x, "ndim", 0) >= 1 and x.shape[0] % size == 0
        return jax.device_put(x, split if divisible else whole)

    return jax.tree.map(place, tree)


def replicate(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """A copy of ``tree`` on every device of the mesh (the dataset)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def describe(mesh: Mesh | None) -> str:
    if mesh is None:
        return "replicates on one device"
    return f"replicates sharded over {mesh.shape[AXIS]} devices"
