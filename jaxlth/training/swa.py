"""Stochastic weight averaging along a training run (Izmailov et al. 2018; each particle of SWAMP,
Choi et al. 2024): the running mean of a replicate's parameters at the end of every epoch from a
start step on, carried in the training state so a resumed run averages exactly the same iterates.

:class:`SWAProgram` is a :class:`~jaxlth.training.program.Program` whose step also updates the
average of an :class:`SWAState`; its schedule is the run's until the start step and, with
``swa_lr > 0``, the constant ``swa_lr`` from it on (the SWA phase of SWAMP's recipe).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxlth.training.program import Program
from jaxlth.training.state import TrainState

PyTree = Any


@flax.struct.dataclass
class SWAState(TrainState):
    """A :class:`TrainState` with ``average`` (a tree like ``params``: the mean of the ``count``
    iterates collected so far; ``params`` themselves before the first) and ``count`` (int32)."""

    average: PyTree
    count: jax.Array


def with_average(state: TrainState) -> SWAState:
    """``state`` with an empty average (``count = 0``; one per replicate when stacked)."""
    replicates = state.data_key.shape[:-1]
    return SWAState(
        state.params,
        state.batch_stats,
        state.opt_state,
        state.data_key,
        average=jax.tree.map(jnp.array, state.params),
        count=jnp.zeros(replicates, jnp.int32),
    )


class SWAProgram(Program):
    """``program`` whose steps collect the parameters after every step ``s + 1 > start`` that ends an
    epoch (``(s + 1) % steps_per_epoch == 0``) into the state's running average.

    Args:
      program: the run's program (model, optimizer, schedule and data layout are reused).
      start: the global step the averaging (and a constant ``swa_lr``) starts at.
      swa_lr: ``> 0``: the learning rate from ``start`` on; ``0``: the run's schedule throughout.
    """

    def __init__(self, program: Program, start: int, swa_lr: float = 0.0):
        base = program.schedule
        schedule = (
            base
            if swa_lr <= 0
            else (lambda step, **values: jnp.where(step >= start, jnp.float32(swa_lr), base(step, **values)))
        )
        super().__init__(program.model, program.tx, schedule, program.spec, program.grid)
        self.start, self.swa_lr = int(start), float(swa_lr)

    def _step_one(self, state, mask, perms, first_epoch, step, data):
        state, out = super()._step_one(state, mask, perms, first_epoch, step, data)
        if not isinstance(state, SWAState):
            return state, out
        done = step + 1
        collect = (done > self.start) & (done % self.spec.steps_per_epoch == 0)
        count = state.count + collect.astype(jnp.int32)
        weight = 1.0 / jnp.maximum(count, 1).astype(jnp.float32)
        average = jax.tree.map(
            lambda a, p: jnp.where(collect, a + ((p - a) * weight).astype(a.dtype), a), state.average, state.params
        )
        return state.replace(average=average, count=count), out


@functools.lru_cache(maxsize=None)
def program_for(program: Program, start: int, swa_lr: float = 0.0) -> SWAProgram:
    """The :class:`SWAProgram` of ``program`` (one per setting, so every level reuses its compiled
    chunks instead of jitting a new program)."""
    return SWAProgram(program, start, swa_lr)


def averaged_network(state: SWAState) -> dict:
    """``{"params", "batch_stats"}``: the SWA average (its BatchNorm statistics are the last
    iterate's; recompute them for the average)."""
    return {"params": state.average, "batch_stats": state.batch_stats}


__all__ = ["SWAState", "SWAProgram", "program_for", "with_average", "averaged_network"]
