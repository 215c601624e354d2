"""The ``data_diet`` config block: its fields with their defaults, their checks (the scores run's
config, no data), and the subset spec each score and fraction makes."""

from __future__ import annotations

import ml_collections

from jaxlth import fields, subsets
from jaxlth.data import selection
from jaxlth.errors import UserError

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
        raise UserError(
            f"data_diet.pruned_fractions must be distinct numbers in (0, 1), got {tuple(dd.pruned_fractions)!r}"
        )
    if dd.keep not in ("hardest", "easiest"):
        raise UserError(f"data_diet.keep must be 'hardest' or 'easiest', got {dd.keep!r}")
    if dd.budget not in BUDGETS:
        raise UserError(f"data_diet.budget must be one of {', '.join(BUDGETS)}, got {dd.budget!r}")
    if any(s != RANDOM for s in names) and not dd.scores_workdir:
        raise UserError("data_diet.scores_workdir is required for scores other than random: a finished scores run")
    for score in names:
        spec = spec_for(config, score, fractions[0], 0)
        selection.check(spec, "data_diet")
        subsets.check_source(spec, fields.to_dict(config)["data"], "data_diet")


def widths(config) -> tuple[int, int]:
    """One network per score trains at once on its subset."""
    count = max(1, len(config.data_diet.scores))
    return count, count
