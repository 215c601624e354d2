"""The ``one_shot`` config block: its fields with their defaults and their checks (no data read)."""

from __future__ import annotations

import ml_collections

from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.pruning import imp


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.densities = (0.5, 0.2, 0.1, 0.05, 0.02)  # target fractions of the prunable weights kept, in (0, 1)
    c.rewind = "0it"  # step spec k: retraining starts from the network at step k
    c.scope = "global"  # global | layerwise | erk magnitude ranking
    c.retrain = "weight_rewind"  # weight_rewind | lr_rewind | finetune (Renda et al. 2020)
    return c


def validate(config) -> None:
    one = config.one_shot
    densities = [float(d) for d in one.densities]
    if not densities:
        raise UserError("one_shot.densities is empty; give target densities such as (0.5, 0.2, 0.1)")
    if any(not 0.0 < d < 1.0 for d in densities):
        raise UserError(f"one_shot.densities must lie in (0, 1), got {tuple(densities)}")
    if len(set(densities)) != len(densities):
        raise UserError(f"one_shot.densities lists a density twice: {tuple(densities)}")
    if one.scope not in imp.SCOPES:
        raise UserError(f"unknown one_shot.scope {one.scope!r}; choose {', '.join(imp.SCOPES)}")
    if one.retrain not in imp.RETRAIN_MODES:
        raise UserError(f"unknown one_shot.retrain {one.retrain!r}; choose one of {', '.join(imp.RETRAIN_MODES)}")
    if step_specs.before(one.rewind, config.train.steps, "one_shot.rewind", "train.steps") is False:
        raise UserError(f"one_shot.rewind ({one.rewind}) must come before the end of training ({config.train.steps})")


def widths(config) -> tuple[int, int]:
    """Every density retrains at once."""
    count = max(1, len(config.one_shot.densities))
    return count, count
