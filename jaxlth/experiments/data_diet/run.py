"""``experiment = "data_diet"``: train on the training set pruned by a score (Paul et al. 2021, Fig. 1).

For every fraction ``f`` of ``data_diet.pruned_fractions`` and every score of ``data_diet.scores``
(scores from the finished scores run ``data_diet.scores_workdir``; ``random`` prunes at random), the
``round(f * N)`` examples the rule drops are removed (``keep="hardest"``: the easiest go, as in the
paper) and a network trains from initialisation on the ``n = N - round(f * N)`` that stay. At one
fraction every score keeps ``n`` examples, so the ``R x S`` networks (replicate ``r``, score ``s`` at
``r * S + s``; each replicate's own initialisation and data key, shared by its scores) train
together in one vmapped program, each on its own examples
(:class:`~jaxlth.training.state.ExampleState`); random subsets differ per replicate (seed
``data.subset.seed + r``). The full training set (``pruned_fraction = 0``, ``score = "none"``)
trains once as the reference.

``budget="steps"`` keeps the number of iterations and the learning-rate schedule of ``train.steps``
on the full data (the paper); ``"epochs"`` counts ``train.steps`` and the schedule in epochs of the subset.
Artifacts ``data_diet/pruned_<f>/{examples,final}`` (``examples``: ``(R * S, n)`` indices); rows
carry ``score`` and ``pruned_fraction``. Figure: ``plots/data_diet.png``.
"""

from __future__ import annotations

import numpy as np

from jaxlth import subsets
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.data_diet.block import NONE, spec_for
from jaxlth.experiments.protocol import MAIN
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import ExampleState, with_examples


def diet_name(pruned_fraction: float) -> str:
    """``0.3 -> "data_diet/pruned_0.3000"``: the networks trained with that fraction of the data pruned."""
    return f"data_diet/pruned_{float(pruned_fraction):.4f}"


def subsets_at(ctx: Context, fraction: float) -> np.ndarray:
    """``(R * S, n)`` int32: the examples each network keeps at ``fraction`` (position ``r * S + s``)."""
    config, labels = ctx.config, ctx.setup.dataset.train_labels
    by_score = np.stack(
        [
            subsets.per_replicate(
                spec_for(config, s, fraction, config.data.subset.seed), labels, config.replicates, "data_diet"
            )
            for s in config.data_diet.scores
        ]
    )
    return np.swapaxes(by_score, 0, 1).reshape(-1, by_score.shape[-1]).astype(np.int32)  # (S, R, n) -> (R * S, n)


def train_fraction(ctx: Context, fraction: float) -> None:
    """Trains (or resumes, or skips when saved) the ``R x S`` networks of one pruned fraction."""
    name = diet_name(fraction)
    if ctx.exists(f"{name}/final") and not ctx.rows_lost(name):
        return
    config, setup = ctx.config, ctx.setup
    names = tuple(config.data_diet.scores)
    examples = ctx.cached(f"{name}/examples", lambda: subsets_at(ctx, fraction))
    n = int(examples.shape[1])
    chosen = setup.for_examples(n, keep_iterations=config.data_diet.budget == "steps")
    coordinates = [{"replicate": r, "score": s} for r in range(config.replicates) for s in names]
    init = copies_lib.repeat(networks.init_network(ctx), len(names))
    plain = networks.start_state(ctx, init, {}, chosen.program, copies=len(names))

    def initial_state() -> ExampleState:
        return setup.place(with_examples(plain(), examples))

    labels = {"arm": MAIN, "level": 0, "pruned_fraction": float(fraction)}
    segment = ctx.segment(
        0, chosen.total_steps, f"pruned {fraction:g}: {n} examples x {len(coordinates)} networks", setup=chosen
    )
    ctx.trained(
        name,
        lambda: ctx.train(name, segment, {}, initial_state, labels, coordinates=coordinates, program=chosen.program),
    )


def run(ctx: Context) -> None:
    dd, setup = ctx.config.data_diet, ctx.setup
    fractions = sorted(float(f) for f in dd.pruned_fractions)
    print(
        f"data diet: {', '.join(dd.scores)} x pruned fractions {', '.join(f'{f:g}' for f in fractions)} "
        f"(keep the {dd.keep}, budget {dd.budget}) of {setup.dataset.num_train} training examples",
        flush=True,
    )
    name = diet_name(0.0)
    labels = {"arm": MAIN, "level": 0, "pruned_fraction": 0.0}
    coordinates = [{"replicate": r, "score": NONE} for r in range(ctx.config.replicates)]
    ctx.trained(
        name,
        lambda: ctx.train(
            name,
            ctx.segment(0, setup.total_steps, "full training set"),
            {},
            setup.init_state,
            labels,
            coordinates=coordinates,
        ),
    )
    for fraction in fractions:
        train_fraction(ctx, fraction)
