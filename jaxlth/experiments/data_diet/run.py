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

import ml_collections
import numpy as np

from jaxlth import arms, subsets
from jaxlth import config as config_lib
from jaxlth.data import selection
from jaxlth.errors import UserError
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.protocol import Experiment
from jaxlth.layout import diet_name
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import ExampleState, with_examples

RANDOM, NONE = "random", "none"
SCORES = ("el2n", "grand", "forgetting", RANDOM)
BUDGETS = ("steps", "epochs")


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.scores_workdir = ""  # a finished scores run of this training set
    c.scores = ("el2n", "grand", "forgetting", "random")  # one line each; random: random pruning
    c.pruned_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # of the training set removed
    c.keep = "hardest"  # hardest: the easiest examples are pruned (the paper) | easiest
    c.score_step = ""  # the step of the scores run whose EL2N/GraNd are used ("": its last)
    c.class_balanced = False  # prune the same number of examples from every class
    c.budget = "steps"  # steps: the full data's iterations and schedule | epochs: train.steps in subset epochs
    return c


def spec_for(config, score: str, fraction: float, seed: int) -> ml_collections.ConfigDict:
    """The subset spec (:mod:`jaxlth.data.selection`) that prunes ``fraction`` by ``score``."""
    dd = config.data_diet
    spec = selection.default_config()
    spec.keep = RANDOM if score == RANDOM else dd.keep
    spec.fraction = 1.0 - float(fraction)
    spec.scores_workdir, spec.score, spec.score_step = dd.scores_workdir, score, dd.score_step
    spec.class_balanced, spec.seed = bool(dd.class_balanced), int(seed)
    return spec


def validate(config) -> None:
    dd = config.data_diet
    names = tuple(dd.scores)
    unknown = [s for s in names if s not in SCORES]
    if unknown or not names or len(set(names)) != len(names):
        raise UserError(f"data_diet.scores must list distinct scores from {', '.join(SCORES)}, got {names!r}")
    fractions = tuple(float(f) for f in dd.pruned_fractions)
    if not fractions or any(not 0.0 < f < 1.0 for f in fractions) or len(set(fractions)) != len(fractions):
        raise UserError(f"data_diet.pruned_fractions must be distinct numbers in (0, 1), got {tuple(dd.pruned_fractions)!r}")
    if dd.keep not in ("hardest", "easiest"):
        raise UserError(f"data_diet.keep must be 'hardest' or 'easiest', got {dd.keep!r}")
    if dd.budget not in BUDGETS:
        raise UserError(f"data_diet.budget must be one of {', '.join(BUDGETS)}, got {dd.budget!r}")
    if any(s != RANDOM for s in names) and not dd.scores_workdir:
        raise UserError("data_diet.scores_workdir is required for scores other than random: a finished scores run")
    for score in names:
        spec = spec_for(config, score, fractions[0], 0)
        selection.check(spec, "data_diet")
        subsets.check_source(spec, config_lib.to_dict(config)["data"], "data_diet")


def subsets_at(ctx: Context, fraction: float) -> np.ndarray:
    """``(R * S, n)`` int32: the examples each network keeps at ``fraction`` (position ``r * S + s``)."""
    config, labels = ctx.config, ctx.setup.dataset.train_labels
    by_score = np.stack([subsets.per_replicate(spec_for(config, s, fraction, config.data.subset.seed), labels,
                                               config.replicates, "data_diet") for s in config.data_diet.scores])
    return np.swapaxes(by_score, 0, 1).reshape(-1, by_score.shape[-1]).astype(np.int32)  # (S, R, n) -> (R * S, n)


def train_fraction(ctx: Context, fraction: float) -> None:
    """Trains (or resumes, or skips when saved) the ``R x S`` networks of one pruned fraction."""
    name = diet_name(fraction)
    if ctx.exists(f"{name}/final"):
        return
    config, setup = ctx.config, ctx.setup
    names = tuple(config.data_diet.scores)
    examples = ctx.cached(f"{name}/examples", lambda: subsets_at(ctx, fraction))
    n = int(examples.shape[1])
    chosen = setup.for_examples(n, keep_iterations=config.data_diet.budget == "steps")
    coords = [{"replicate": r, "score": s} for r in range(config.replicates) for s in names]
    init = copies_lib.repeat(networks.init_network(ctx), len(names))
    plain = networks.start_state(ctx, init, {}, chosen.program, copies=len(names))

    def initial_state() -> ExampleState:
        return setup.place(with_examples(plain(), examples))

    labels = {"experiment": "data_diet", "arm": arms.MAIN, "level": 0, "pruned_fraction": float(fraction)}
    segment = ctx.segment(0, chosen.total_steps, f"pruned {fraction:g}: {n} examples x {len(coords)} networks",
                          setup=chosen)
    ctx.trained(name, lambda: ctx.train(name, segment, {}, initial_state, labels, coords=coords,
                                        program=chosen.program))


def run(ctx: Context) -> None:
    dd, setup = ctx.config.data_diet, ctx.setup
    fractions = sorted(float(f) for f in dd.pruned_fractions)
    print(f"data diet: {', '.join(dd.scores)} x pruned fractions {', '.join(f'{f:g}' for f in fractions)} "
          f"(keep the {dd.keep}, budget {dd.budget}) of {setup.dataset.num_train} training examples", flush=True)
    name = diet_name(0.0)
    labels = {"experiment": "data_diet", "arm": arms.MAIN, "level": 0, "pruned_fraction": 0.0}
    coords = [{"replicate": r, "score": NONE} for r in range(ctx.config.replicates)]
    ctx.trained(name, lambda: ctx.train(name, ctx.segment(0, setup.total_steps, "full training set"), {},
                                        setup.init_state, labels, coords=coords))
    for fraction in fractions:
        train_fraction(ctx, fraction)


def report(table, directory: str) -> tuple[str, list[str]]:
    from jaxlth import plots  # noqa: PLC0415 (matplotlib is slow to import)

    return plots.format_data_diet(table), plots.save_data_diet_figures(table, directory)


def widths(config) -> tuple[int, int]:
    """One network per score trains at once on its subset."""
    count = max(1, len(config.data_diet.scores))
    return count, count


EXPERIMENT = Experiment(
    name="data_diet",
    summary="train on the training set pruned by EL2N, GraNd, forgetting or at random",
    run=run,
    defaults=defaults,
    validate=validate,
    columns=("score", "pruned_fraction"),
    may_change=("data_diet.pruned_fractions", "data_diet.scores"),
    report=report,
    order=7,
    widths=widths,
)
