"""The networks experiments share: initialisation, the rewind point, a level's starting state.

Each is cached in the workdir (computed once, loaded after), with all replicates stacked.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from jaxlth import arms, sharding, subsets
from jaxlth import steps as step_specs
from jaxlth.checkpoint import Checkpoints
from jaxlth.experiments.context import Context, network_of
from jaxlth.layout import level_name
from jaxlth.lottery import imp
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import ExampleState, TrainState, copy as device_copy, with_examples

PyTree = Any
INIT = "init"
REWIND = "rewind"
TRUNK_STATES = "trunk_states"  # checkpoints of a trunk's full training state at every step asked for


def init_network(ctx: Context) -> dict:
    """``{"params", "batch_stats"}`` of the replicates at initialisation (artifact ``init``)."""
    return ctx.cached(INIT, lambda: network_of(ctx.setup.init_state()))


def state_at(ctx: Context, step: int, initial_state: Callable[[], TrainState], labels: dict, description: str,
             program=None) -> TrainState:
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
            state = ctx.train(f"trunk_{start_step}_{step}",
                              ctx.segment(start_step, step, f"{description} to step {step}", eval_train=False),
                              {}, lambda: device_copy(start), labels, program=program)
        else:
            state = start
        states.save(step, state)
        return state
    finally:
        states.close()


def start_state(ctx: Context, network: dict, mask: PyTree, program=None, copies: int = 1,
                data_keys: Callable[[], Any] | None = None) -> Callable[[], TrainState]:
    """The state a training from ``network`` on ``mask`` starts in: pruned weights zeroed, BatchNorm
    statistics copied, a fresh optimizer state, the replicates' own data keys (each repeated for
    the ``copies`` of a replicate stacked as :mod:`jaxlth.training.copies` lays them out), or
    ``data_keys()`` when given (copies with their own SGD noise)."""
    program = program or ctx.setup.program

    def initial_state() -> TrainState:
        params = imp.on_mask(network["params"], mask)
        batch_stats = jax.tree.map(lambda x: x.copy(), network["batch_stats"])
        keys = data_keys() if data_keys is not None else ctx.setup.data_keys()
        if data_keys is None and copies > 1:
            keys = copies_lib.repeat(keys, copies)
        return TrainState(params, batch_stats, program.fresh_opt_state(params), keys)

    return initial_state


def train_level(ctx: Context, arm: str, level: int, mask: PyTree, network: dict, start: int, end: int,
                description: str, program=None, coords: list | None = None) -> TrainState:
    """Trains ``network`` on ``mask`` over ``[start, end)`` as ``arm`` at ``level`` (resumable).

    ``coords``: the rows' coordinates per stacked network (:meth:`Context.train`); when they are
    more than the replicates, the leaves hold ``len(coords) // R`` copies of each replicate.
    """
    name = f"{arm}/{level_name(level)}"
    labels = {"experiment": ctx.config.experiment, "arm": arm, "level": level}
    copies = len(coords) // ctx.config.replicates if coords is not None else 1
    return ctx.train(name, ctx.segment(start, end, description), mask,
                     start_state(ctx, network, mask, program, copies), labels, coords=coords, program=program)


def rewind_network(ctx: Context, rewind_step: int, pretrain=None) -> dict:
    """Params and batch statistics at ``rewind_step``: dense training ``0 -> k`` once (artifact ``rewind``).

    ``pretrain``: a subset spec (``lottery.pretrain_data``) whose examples the pretraining runs on
    instead of the whole training set (:func:`pretrain_on_subset`); ``None`` or ``keep="all"``: all.
    """

    def compute() -> dict:
        init = init_network(ctx)
        if pretrain is not None and pretrain.keep != "all":
            return pretrain_on_subset(ctx, init, pretrain, rewind_step)
        if rewind_step == 0:
            return init
        return network_of(train_level(ctx, arms.PRETRAIN, 0, {}, init, 0, rewind_step, "pretrain to rewind step"))

    return ctx.cached(REWIND, compute)


def pretrain_on_subset(ctx: Context, init: dict, spec, rewind_step: int) -> dict:
    """The rewind network pretrained from ``init`` on the examples ``spec`` keeps (Paul et al. 2022).

    Each replicate trains on its own examples (random subsets: seed ``spec.seed + r``; score-chosen
    subsets are the same for all), saved as ``pretrain/examples`` ``(R, n)``, for ``spec.steps``
    (a step spec whose epochs are epochs of the subset; ``""``: the rewind step ``k``) with the
    learning-rate schedule of the full run at the same step numbers. Levels then train on the
    whole training set from the rewind step ``k``.
    """
    setup = ctx.setup
    examples = ctx.cached(f"{arms.PRETRAIN}/examples", lambda: subsets.per_replicate(
        spec, setup.dataset.train_labels, ctx.config.replicates, "lottery.pretrain_data"))
    n = int(examples.shape[1])
    chosen = setup.for_examples(n)
    steps = rewind_step if not spec.steps else step_specs.to_steps(spec.steps, chosen.program.spec.steps_per_epoch,
                                                                   "lottery.pretrain_data.steps")
    if steps == 0:
        return init
    plain = start_state(ctx, init, {}, chosen.program)

    def initial_state() -> ExampleState:
        return setup.place(with_examples(plain(), examples))

    labels = {"experiment": ctx.config.experiment, "arm": arms.PRETRAIN, "level": 0}
    state = ctx.train(f"{arms.PRETRAIN}/{level_name(0)}", ctx.segment(0, steps, f"pretrain on {n} examples"), {},
                      initial_state, labels, program=chosen.program)
    return network_of(state)


def mask_rows(ctx: Context, arm: str, level: int, step: int, places: list | None = None,
              **fixed) -> tuple[dict, Callable]:
    """``(labels, make_rows)`` of a mask's per-layer density rows, for :meth:`Context.cached`.

    ``places[i]``: the coordinates of stacked mask ``i`` (default ``{"replicate": i}``); ``fixed``
    coordinates go into every row.
    """
    labels = {"experiment": ctx.config.experiment, "arm": arm, "level": level, "split": "mask"}

    def make(mask) -> list[dict]:
        overall = sharding.to_host(mask_lib.density(mask, replicate_axis=True))
        epoch = round(step / ctx.setup.steps_per_epoch, 4)
        rows = []
        for layer, values in sharding.to_host(mask_lib.layer_density(mask, replicate_axis=True)).items():
            for i, value in enumerate(values):
                where = places[i] if places is not None else {"replicate": i}
                rows.append(dict(labels, **fixed, **where, density=float(overall[i]), step=step, epoch=epoch,
                                 metric="density", value=float(value), layer=layer))
        return rows

    return labels, make
