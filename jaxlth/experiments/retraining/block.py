"""The ``retraining`` config block: its fields with their defaults and their checks (the source run's
config, no data)."""

from __future__ import annotations

import ml_collections

from jaxlth.errors import UserError
from jaxlth.experiments.lottery.source import lottery_source


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.source_workdir = ""  # a finished lottery workdir (one prune fraction, weight rewinding)
    c.train_control = True  # train the no-retraining masks from the rewind point (else only compare masks)
    return c


def validate(config) -> None:
    re = config.retraining
    if not re.source_workdir:
        raise UserError("retraining.source_workdir is required: the finished lottery run to analyse")
    source = lottery_source(re.source_workdir, config, "retraining.source_workdir")
    if source.config["lottery"].get("retrain", "weight_rewind") != "weight_rewind":
        raise UserError(
            f"retraining.source_workdir {re.source_workdir} retrains by "
            f"{source.config['lottery']['retrain']}; this analysis needs weight rewinding"
        )
    if len(source.levels()) < 2:
        raise UserError(
            f"retraining.source_workdir {re.source_workdir} has {len(source.levels())} finished "
            f"level(s); this analysis needs at least 2"
        )


def widths(config) -> tuple[int, int]:
    """The control trains a mask for every pruned level of the source at once."""
    re = config.retraining
    if not (re.source_workdir and re.train_control):
        return 1, 1
    count = sum(level > 0 for level in lottery_source(re.source_workdir, config, "retraining.source_workdir").levels())
    return max(1, count), max(1, count)
