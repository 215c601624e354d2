"""Several processes, one run: JAX's multi-controller runtime (TPU pod slices, GPU clusters).

Every process runs the same command; :func:`initialize` joins them (``jax.distributed``) before
anything else touches JAX. Then ``jax.devices()`` lists the devices of all processes, the
replicate axis is sharded over all of them (``jaxlth.sharding``), Orbax saves and restores the
global arrays from every process, and only the primary process (index 0) writes the workdir's
own files (``jaxlth.storage``) and the terminal. A single process is the special case of one.
"""

from __future__ import annotations

import os

import jax
from jax.experimental import multihost_utils

from jaxlth.errors import UserError


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: int = 300,
) -> None:
    """Joins this process to the others: ``jax.distributed.initialize``. Must run before any other
    use of JAX in the process.

    Without arguments the cluster is detected (Cloud TPU pod slices, SLURM, Open MPI, Kubernetes);
    elsewhere give ``coordinator`` (``host:port`` of process 0), ``num_processes`` and this
    process's ``process_id`` (the same coordinator and count in every process).
    ``timeout_s``: how long to wait for the other processes to join.
    """
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise UserError(
            "--coordinator, --num_processes and --process_id go together (or none of them, to detect "
            "the cluster: TPU pod slice, SLURM, Open MPI)"
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise UserError(f"--process_id {process_id} is not one of 0 .. {num_processes - 1} (--num_processes)")
    heartbeat = int(os.environ.get("JAXLTH_HEARTBEAT_TIMEOUT", "100"))  # a dead peer is noticed after this
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes,
            process_id,
            initialization_timeout=timeout_s,
            heartbeat_timeout_seconds=heartbeat,
            shutdown_timeout_seconds=heartbeat,
        )
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"the processes could not be joined ({first[:300]}); check --coordinator, --num_processes "
            "and --process_id, or that this job runs on a cluster JAX detects"
        ) from None


def count() -> int:
    """How many processes run this program (1 unless :func:`initialize` joined several)."""
    return jax.process_count()


def is_primary() -> bool:
    """Whether this is the process that writes the workdir's files and the terminal (index 0).

    Asks JAX only when it has been joined to others, so a single process never starts a backend
    here (a file written before any JAX use stays JAX-free)."""
    return not jax.distributed.is_initialized() or jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier ``name`` (no-op for one process)."""
    if count() > 1:
        multihost_utils.sync_global_devices(name)
