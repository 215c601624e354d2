"""Lottery tickets on a data diet (Paul et al. 2022): the rewind point pretrained on a subset."""

from __future__ import annotations

from jaxlth import steps as step_specs
from jaxlth import subsets
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.networks import PRETRAIN, start_state
from jaxlth.layout import level_name
from jaxlth.training.state import ExampleState, with_examples


def on_subset(ctx: Context, init: dict, spec, rewind_step: int) -> dict:
    """The rewind network pretrained from ``init`` on the examples ``spec`` (``lottery.pretrain_data``) keeps.

    Each replicate trains on its own examples (random subsets: seed ``spec.seed + r``; score-chosen
    subsets are the same for all), saved as ``pretrain/examples`` ``(R, n)``, for ``spec.steps``
    (a step spec whose epochs are epochs of the subset; ``""``: the rewind step ``k``) with the
    learning-rate schedule of the full run at the same step numbers. Levels then train on the
    whole training set from the rewind step ``k``.
    """
    setup = ctx.setup
    examples = ctx.cached(
        f"{PRETRAIN}/examples",
        lambda: subsets.per_replicate(spec, setup.dataset.train_labels, ctx.config.replicates, "lottery.pretrain_data"),
    )
    n = int(examples.shape[1])
    chosen = setup.for_examples(n)
    steps = (
        rewind_step
        if not spec.steps
        else step_specs.to_steps(spec.steps, chosen.program.spec.steps_per_epoch, "lottery.pretrain_data.steps")
    )
    if steps == 0:
        return init
    plain = start_state(ctx, init, {}, chosen.program)

    def initial_state() -> ExampleState:
        return setup.place(with_examples(plain(), examples))

    state = ctx.train(
        f"{PRETRAIN}/{level_name(0)}",
        ctx.segment(0, steps, f"pretrain on {n} examples"),
        {},
        initial_state,
        {"arm": PRETRAIN, "level": 0},
        program=chosen.program,
    )
    return network_of(state)
