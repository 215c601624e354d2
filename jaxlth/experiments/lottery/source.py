"""A finished lottery run analysed by another experiment (``<block>.source_workdir``).

Experiments that measure an IMP run (instability's successive levels, the landscape, retraining,
pruning at initialisation's references) load it through :func:`lottery_source`, which refuses a run
whose networks, data or training differ from the config's: the analysis then means what it says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxlth import fields
from jaxlth.errors import UserError
from jaxlth.experiments.lottery.arms import ARMS

if TYPE_CHECKING:
    from jaxlth.experiments.lottery.reader import LotteryRun

# Config fields an analysis of a lottery run must share with it (same networks, data and training).
SHARED_WITH_SOURCE = ("seed", "data_seed", "replicates", "data", "model", "pruning", "train")


def open_lottery(workdir: str, field: str) -> LotteryRun:
    """The lottery run in ``workdir`` (named by the config field ``field``); one sentence when it is none."""
    from jaxlth.experiments.lottery.reader import LotteryRun  # read when a config names a source, not before

    try:
        run = LotteryRun(workdir, ARMS.main)
    except UserError as e:
        raise UserError(f"{field} {workdir}: {e}") from None
    if run.experiment != "lottery":
        raise UserError(f"{field} {workdir} holds a {run.experiment!r} run, not a lottery run")
    return run


def lottery_source(workdir: str, config, field: str, sweep: bool = False) -> LotteryRun:
    """The lottery run in ``workdir`` (named by the config field ``field``), checked compatible.

    ``sweep``: whether the analysis handles a prune-fraction sweep (``R * F`` stacked networks).
    Reads only the source's ``config.json``: no data, safe to call from ``validate``.
    """
    source = open_lottery(workdir, field)
    if not sweep and len(source.fractions) > 1:
        raise UserError(
            f"{field} {workdir} sweeps prune fractions {source.fractions}; this analysis needs a "
            f"lottery run with one lottery.prune_fraction"
        )
    mine = fields.to_dict(config)
    defaults = fields.to_dict(fields.common_config())
    for name in SHARED_WITH_SOURCE:
        saved = {name: source.config[name]} if name in source.config else {}
        differ = fields.differences(saved, {name: mine[name]}, (), defaults)
        if differ:
            raise UserError(f"{name} must equal the source run's in {workdir} ({'; '.join(differ[:3])})")
    return source
