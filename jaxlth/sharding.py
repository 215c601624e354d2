"""Sharding the replicate axis over devices: a 1-D mesh named ``replica``, data replicated.

Every stacked pytree (states, masks) carries replicates (or copies) on axis 0. With ``P``
processes of ``D`` devices each (``jax.devices()``: one process unless ``jaxlth.processes`` joined
several) and ``R`` replicates, the axis is split over ``P * d`` devices, ``d <= D`` the largest
with ``R`` a multiple of ``P * d`` (all of them when ``R`` is a multiple of ``P * D``; one device,
i.e. no sharding, when one process has no such ``d > 1``). The jitted programs follow their
inputs' shardings (``jax.jit`` with ``NamedSharding``, no ``pmap``): each device trains its
replicates, and the dataset is replicated on every device. :func:`to_host` brings a sharded
result to every process's memory (an all-gather across processes).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlth.errors import UserError

AXIS = "replica"
BATCH = "batch"  # streamed data only: the examples of a batch split over devices (data parallelism)
PyTree = Any


def replica_mesh(num_replicates: int, devices=None) -> Mesh | None:
    """The mesh the replicate axis is sharded over, or ``None`` when one device is used.

    ``devices`` (default ``jax.devices()``, every process's) are grouped by process; each process
    gives the same number of its devices, in process order."""
    devices = list(devices if devices is not None else jax.devices())
    by_process: dict[int, list] = {}
    for device in devices:
        by_process.setdefault(device.process_index, []).append(device)
    processes = len(by_process)
    if num_replicates % processes:
        raise UserError(
            f"replicates={num_replicates} cannot be split over {processes} processes: choose a multiple of {processes}"
        )
    local = min(len(group) for group in by_process.values())
    per_process = max(d for d in range(1, local + 1) if num_replicates % (processes * d) == 0)
    if processes * per_process <= 1:
        return None
    chosen = [d for _, group in sorted(by_process.items()) for d in group[:per_process]]
    return Mesh(np.array(chosen), (AXIS,))


def stream_mesh(num_replicates: int, batch_size: int, devices=None) -> Mesh | None:
    """For streamed data: every device used even with fewer replicates than devices. The mesh is
    ``(replica, batch)`` of shape ``(d_r, d_b)``, ``d_r * d_b`` all devices, ``d_r`` the largest
    divisor of the replicates with ``d_b`` dividing ``batch_size``: each replicate's batch is split
    over ``d_b`` devices (its gradients and BatchNorm statistics all-reduced by XLA). Without such a
    split, :func:`replica_mesh`."""
    devices = sorted(devices if devices is not None else jax.devices(), key=lambda d: (d.process_index, d.id))
    total = len(devices)
    for d_r in sorted((d for d in range(1, total + 1) if total % d == 0), reverse=True):
        d_b = total // d_r
        if num_replicates % d_r == 0 and batch_size % d_b == 0:
            if d_b == 1:
                break
            return Mesh(np.array(devices).reshape(d_r, d_b), (AXIS, BATCH))
    return replica_mesh(num_replicates, devices)


def batch_split(mesh: Mesh | None) -> int:
    """Over how many devices each batch is split (1 unless :func:`stream_mesh` split it)."""
    return mesh.shape[BATCH] if mesh is not None and BATCH in mesh.axis_names else 1


def shard_replicas(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Puts every leaf's axis 0 across the mesh (leaves whose axis 0 does not divide stay whole)."""
    if mesh is None:
        return tree
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    size = mesh.shape[AXIS]

    def place(x):
        divisible = len(getattr(x, "shape", ())) >= 1 and x.shape[0] % size == 0
        return put(x, split if divisible else whole)

    return jax.tree.map(place, tree)


def replicate(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """A copy of ``tree`` on every device of the mesh (the dataset)."""
    if mesh is None:
        return tree
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: put(x, whole), tree)


def put(x, target: NamedSharding):
    """``x`` (an array, or a ``jax.ShapeDtypeStruct`` to restore into) with sharding ``target``.

    Across processes, a value every process holds whole (the same in each: same seeds, same files)
    becomes the global array of which each process keeps its devices' parts."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=target)
    if target.is_fully_addressable:
        return jax.device_put(x, target)
    if isinstance(x, jax.core.Tracer):  # placing inside a traced function (jax.eval_shape)
        return jax.lax.with_sharding_constraint(x, target)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x if x.sharding == target else jax.device_put(x, target)
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, target, lambda index: value[index])


def to_host(tree: PyTree) -> PyTree:
    """``tree`` as numpy arrays, whole in every process (arrays spread over several processes are
    all-gathered: every process must call this at the same point)."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(fetch, tree)


def describe(mesh: Mesh | None) -> str:
    if mesh is None:
        return "replicates on one device"
    split = batch_split(mesh)
    if mesh.shape[AXIS] == 1:
        return f"each batch split over {split} devices"
    return f"replicates sharded over {mesh.shape[AXIS]} devices" + (
        f", each batch split over {split}" if split > 1 else ""
    )


def copy(tree: PyTree) -> PyTree:
    """A fresh device copy of every array leaf (to keep a state whose buffers get donated), with its
    sharding. Within one process a runtime copy that compiles nothing (``jnp.array(x, copy=True)``
    compiles a program per leaf shape: 7 for a LeNet state); arrays spread over several processes
    keep that compiled copy, the path tests/test_processes.py checks."""
    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return jax.device_put(tree, may_alias=False)
    return jax.tree.map(lambda x: jax.numpy.array(x, copy=True), tree)
