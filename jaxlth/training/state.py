"""The training state of one or many replicates, as a pytree.

Every leaf carries a leading replicate axis of size ``R`` when the state is stacked; the global
step is kept outside (one integer shared by all replicates, which train in lockstep).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxlth import rng

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


@flax.struct.dataclass
class ExampleState(TrainState):
    """A :class:`TrainState` that trains on chosen examples and may track each example's history.

    ``examples``: ``(n,)`` int32 indices into the training set; the program's data order permutes
    these ``n`` (its ``Spec.num_train`` is ``n``), so networks stacked in one program may train on
    different subsets of the same size. ``history``: ``{}`` (nothing tracked) or the per-example
    arrays of :func:`jaxlth.training.history.empty`, updated at every step an example is in a batch.
    """

    examples: jax.Array
    history: PyTree


def with_examples(state: TrainState, examples: jax.Array, history: PyTree | None = None) -> ExampleState:
    """``state`` training on ``examples`` (``(..., n)`` indices, a leading replicate axis when stacked),
    tracking ``history`` (``None``: nothing)."""
    return ExampleState(
        state.params,
        state.batch_stats,
        state.opt_state,
        state.data_key,
        examples=jnp.asarray(examples, jnp.int32),
        history={} if history is None else history,
    )


# The streams are named in jaxlth.rng; these aliases keep older imports working.
replicate_keys = rng.replicate_keys
INIT_STREAM = rng.INIT
DATA_STREAM = rng.DATA
