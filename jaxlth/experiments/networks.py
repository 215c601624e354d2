"""The networks experiments share: initialisation, the rewind point, a level's starting state and
its training, a mask's density rows.

Each is cached in the workdir (computed once, loaded after), with all replicates stacked.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import jax

from jaxlth import sharding, storage
from jaxlth.checkpoint import Checkpoints
from jaxlth.experiments.context import Context, network_of
from jaxlth.layout import level_name
from jaxlth.pruning import imp
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import TrainState

PyTree = Any
INIT = "init"
REWIND = "rewind"
PRETRAIN = "pretrain"  # the arm of the dense training 0 -> k that makes the rewind point
TRUNK_STATES = "trunk_states"  # checkpoints of a trunk's full training state at every step asked for


@dataclasses.dataclass(frozen=True)
class ArmLevel:
    """One arm at one level: what its training starts from and the steps it trains.

    ``network``: the starting ``{"params", "batch_stats"}``, stacked; ``program``: ``None`` for the
    setup's; ``coordinates``: the row coordinates of each stacked network (``None``:
    ``{"replicate": i}``; more networks than replicates: ``len(coordinates) // R`` copies of each).
    """

    arm: str
    level: int
    mask: PyTree
    network: dict
    start: int
    end: int
    program: Any = None
    coordinates: list | None = None

    @property
    def name(self) -> str:
        """``<arm>/level_LL``: where its artifacts and checkpoints go."""
        return f"{self.arm}/{level_name(self.level)}"

    def labels(self) -> dict:
        return {"arm": self.arm, "level": self.level}


def init_network(ctx: Context) -> dict:
    """``{"params", "batch_stats"}`` of the replicates at initialisation (artifact ``init``); with
    ``model.pretrained``, the networks they start from, ``pretrained.json`` saying what came from where,
    and one row per replicate (``arm=init``, ``split=start``, ``metric=source_replicate``: which of the
    checkpoint's networks it took)."""
    pretrained = ctx.setup.pretrained
    if pretrained is None:
        return ctx.cached(INIT, lambda: network_of(ctx.setup.init_state()))
    if not storage.exists(ctx.layout.pretrained_file):
        described = dict(
            path=pretrained.path,
            kind=pretrained.kind,
            format=pretrained.format,
            description=pretrained.description,
            source_replicates=list(pretrained.sources),
            head_rule=ctx.config.model.get("pretrained_head", "auto"),
            **ctx.setup.start_plan(),
            **pretrained.notes,
        )
        storage.write_text(ctx.layout.pretrained_file, json.dumps(described, indent=1) + "\n")
    labels = {"arm": INIT, "level": 0, "split": "start"}

    def rows(_) -> list[dict]:
        return [
            dict(labels, replicate=r, density=1.0, step=0, epoch=0.0, metric="source_replicate", value=float(s))
            for r, s in enumerate(pretrained.sources)
        ]

    return ctx.cached(INIT, lambda: network_of(ctx.setup.init_state()), rows=(labels, rows))


def state_at(
    ctx: Context, step: int, initial_state: Callable[[], TrainState], labels: dict, description: str, program=None
) -> TrainState:
    """The full training state (optimizer state included) of one training run from
    ``initial_state()`` at ``step``: trained once, resumably, from the latest state kept before
    ``step``, and kept (``checkpoints/trunk_states/<step>``) for every later call."""
    states = Checkpoints(ctx.layout.checkpoints(TRUNK_STATES), 10_000)
    try:
        found = states.restore_latest(jax.eval_shape(initial_state), 0, step)
        if found is not None and found[1] == step:
            return found[0]
        start, start_step = found if found is not None else (initial_state(), 0)
        if step > start_step:
            state = ctx.train(
                f"trunk_{start_step}_{step}",
                ctx.segment(start_step, step, f"{description} to step {step}", eval_train=False),
                {},
                lambda: sharding.copy(start),
                labels,
                program=program,
            )
        else:
            state = start
        states.save(step, state)
        return state
    finally:
        states.close()


def start_state(
    ctx: Context, network: dict, mask: PyTree, program=None, copies: int = 1, data_keys: Callable[[], Any] | None = None
) -> Callable[[], TrainState]:
    """The state a training from ``network`` on ``mask`` starts in: pruned weights zeroed, BatchNorm
    statistics copied, a fresh optimizer state, the replicates' own data keys (each repeated for
    the ``copies`` of a replicate stacked as :mod:`jaxlth.training.copies` lays them out), or
    ``data_keys()`` when given (copies with their own SGD noise)."""
    program = ctx.program(program)

    def initial_state() -> TrainState:
        params = imp.on_mask(network["params"], mask)
        batch_stats = jax.tree.map(lambda x: x.copy(), network["batch_stats"])
        keys = data_keys() if data_keys is not None else ctx.setup.data_keys()
        if data_keys is None and copies > 1:
            keys = copies_lib.repeat(keys, copies)
        return TrainState(params, batch_stats, program.fresh_opt_state(params), keys)

    return initial_state


def train_level(ctx: Context, level: ArmLevel, description: str | None = None) -> TrainState:
    """Trains ``level.network`` on ``level.mask`` over ``[level.start, level.end)`` (resumable)."""
    copies = len(level.coordinates) // ctx.config.replicates if level.coordinates is not None else 1
    segment = ctx.segment(level.start, level.end, description or f"{level.arm} level {level.level}")
    return ctx.train(
        level.name,
        segment,
        level.mask,
        start_state(ctx, level.network, level.mask, level.program, copies),
        level.labels(),
        coordinates=level.coordinates,
        program=level.program,
    )


def trained(ctx: Context, level: ArmLevel, description: str | None = None) -> dict:
    """The network of ``level`` trained (``<arm>/level_LL/final``; loaded when on disk)."""
    return ctx.trained(level.name, lambda: train_level(ctx, level, description))


def rewind_network(ctx: Context, rewind_step: int, pretrain: Callable[[dict], dict] | None = None) -> dict:
    """Params and batch statistics at ``rewind_step``: dense training ``0 -> k`` once (artifact ``rewind``).

    ``pretrain(init)``: another way to make the rewind network from the initialisation (e.g. the
    lottery's pretraining on a data diet); ``None``: training ``0 -> k`` on the whole training set.
    """

    def compute() -> dict:
        init = init_network(ctx)
        if pretrain is not None:
            return pretrain(init)
        if rewind_step == 0:
            return init
        # the dense mask rather than none: the levels' training program, not a second one (keeping a weight
        # where the mask is True is exact, so the network is bitwise the unmasked training's)
        dense = ctx.setup.dense_mask(init["params"])
        pretraining = ArmLevel(PRETRAIN, 0, dense, init, 0, rewind_step)
        return network_of(train_level(ctx, pretraining, "pretrain to rewind step"))

    if ctx.exists(REWIND) and ctx.rows_lost(f"{PRETRAIN}/{level_name(0)}"):
        compute()  # the pretraining's rows again (lost in a crash), from its kept checkpoints
    return ctx.cached(REWIND, compute)


def mask_rows(
    ctx: Context, arm: str, level: int, step: int, coordinates: list | None = None, **fixed
) -> tuple[dict, Callable]:
    """``(labels, make_rows)`` of a mask's per-layer density rows, for :meth:`Context.cached`.

    ``coordinates[i]``: the row coordinates of stacked mask ``i`` (default ``{"replicate": i}``);
    ``fixed`` coordinates go into every row.
    """
    labels = {"arm": arm, "level": level, "split": "mask"}

    def make(mask) -> list[dict]:
        overall, layers = mask_lib.replicate_densities(mask)
        epoch = round(step / ctx.setup.steps_per_epoch, 4)
        rows = []
        for layer, values in layers.items():
            for i, value in enumerate(values):
                for found in ctx.setup.grid.at(i, len(values), coordinates):
                    rows.append(
                        dict(
                            labels,
                            **fixed,
                            **found,
                            density=float(overall[i]),
                            step=step,
                            epoch=epoch,
                            metric="density",
                            value=float(value),
                            layer=layer,
                        )
                    )
        return rows

    return labels, make
