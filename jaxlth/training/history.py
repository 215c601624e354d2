"""Each training example's history along training: the forgetting events of Toneva et al. (2019).

An example is *presented* whenever it is in a training batch; its prediction there (the training
forward pass, on the augmented example, before that step's update) is correct or not. A
*forgetting event* is a presentation that is wrong after the previous one was right; an example
that was never right at any presentation was *never learned*. The arrays live in the training
state (:class:`~jaxlth.training.state.ExampleState`) and are updated inside the compiled chunk:
no host synchronisation per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def empty(num_examples: int, replicates: int | None = None) -> dict:
    """The history before training of ``num_examples`` training examples: each array ``(N,)``, or
    ``(R, N)`` with ``replicates``."""
    shape = (num_examples,) if replicates is None else (replicates, num_examples)
    return {
        "forgetting_events": jnp.zeros(shape, jnp.int32),
        "learned": jnp.zeros(shape, bool),  # right at some presentation so far
        "last_correct": jnp.zeros(shape, bool),  # right at the latest presentation
        "presentations": jnp.zeros(shape, jnp.int32),
    }


def update(history: dict, indices: jax.Array, correct: jax.Array) -> dict:
    """The history after one batch: ``indices`` ``(B,)`` distinct example indices, ``correct`` ``(B,)`` bool."""
    forgotten = history["last_correct"][indices] & ~correct
    return {
        "forgetting_events": history["forgetting_events"].at[indices].add(forgotten.astype(jnp.int32)),
        "learned": history["learned"].at[indices].set(history["learned"][indices] | correct),
        "last_correct": history["last_correct"].at[indices].set(correct),
        "presentations": history["presentations"].at[indices].add(1),
    }
