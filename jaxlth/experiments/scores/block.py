"""The ``scores`` config block: its fields with their defaults and their checks (no data read)."""

from __future__ import annotations

import ml_collections

from jaxlth import steps as step_specs
from jaxlth import subsets
from jaxlth.errors import UserError


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.at = "0it,20ep"  # comma-separated step specs where EL2N and GraNd are computed
    c.kinds = ("el2n", "grand", "forgetting")  # forgetting: tracked along the whole training
    c.chunk = 16  # examples per per-example-gradient batch (memory ~ R * chunk * parameters * 4 bytes)
    return c


def validate(config) -> None:
    sc = config.scores
    kinds = tuple(sc.kinds)
    unknown = [k for k in kinds if k not in subsets.SCORE_KINDS]
    if unknown or not kinds:
        raise UserError(f"scores.kinds holds {unknown or 'nothing'}; choose from {', '.join(subsets.SCORE_KINDS)}")
    at = step_specs.parse_list(sc.at, 1, "scores.at")
    if any(k in subsets.STEP_KINDS for k in kinds) and not at:
        raise UserError("scores.at is empty: give the steps where EL2N and GraNd are computed, e.g. '0it,20ep'")
    for spec in filter(None, (s.strip() for s in str(sc.at).split(","))):
        if step_specs.before(config.train.steps, spec, "train.steps", "scores.at") is True:
            raise UserError(f"scores.at step {spec} comes after the end of training ({config.train.steps})")
    if int(sc.chunk) < 1:
        raise UserError(f"scores.chunk must be a positive number of examples, got {sc.chunk}")
