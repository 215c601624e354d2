"""The training state of one or many replicates, as a pytree.

Every leaf carries a leading replicate axis of size ``R`` when the state is stacked; the global
step is kept outside (one integer shared by all replicates, which train in lockstep).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Parameters, BatchNorm statistics (``{}`` without BN), optimizer state and data key.

    ``data_key`` (uint32 ``(2,)`` per replicate) fixes the SGD noise: data order and augmentation.
    """

    params: PyTree
    batch_stats: PyTree
    opt_state: PyTree
    data_key: jax.Array


def replicate_keys(seed: int, replicates: int, stream: int) -> jax.Array:
    """``(R, 2)`` keys: replicate ``r`` uses ``fold_in(PRNGKey(seed + r), stream)``.

    So replicate ``r`` of a run with seed ``s`` equals replicate 0 of a run with seed ``s + r``:
    a sweep over seeds and a vmapped run with ``replicates=R`` are the same experiment.
    """
    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed + r), stream) for r in range(replicates)])


INIT_STREAM = 0
DATA_STREAM = 1


def copy(tree: PyTree) -> PyTree:
    """A fresh device copy of every array leaf (to keep a state whose buffers get donated)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)
