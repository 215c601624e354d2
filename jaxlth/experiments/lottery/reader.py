"""A lottery run read back: its prune fractions, the ``R * F`` networks of a sweep selected by
``prune_fraction=``, and what every level's networks cost (:meth:`LotteryRun.costs`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import runs
from jaxlth.experiments import run_costs
from jaxlth.experiments.networks import PRETRAIN


class LotteryRun(runs.Run):
    """A lottery run (``jaxlth.results.load`` of a lottery workdir)."""

    @property
    def fractions(self) -> tuple[float, ...]:
        """The prune fractions: one, or the ``F`` of a sweep."""
        value = self.config.get("lottery", {}).get("prune_fraction", 0.2)
        return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)

    @property
    def stacked(self) -> dict[str, tuple]:
        """Fraction ``f`` of replicate ``r`` is network ``r * F + f`` of every artifact after ``rewind``."""
        return {"prune_fraction": self.fractions}

    def upgrade(self, table: pd.DataFrame) -> pd.DataFrame:
        """Tables written before sweeps existed get their one ``prune_fraction`` (the pretraining to the
        rewind point is every fraction's: NaN)."""
        if "prune_fraction" not in table and len(self.fractions) == 1:
            table = table.assign(prune_fraction=np.where(table["arm"] == PRETRAIN, np.nan, self.fractions[0]))
        return table

    def costs(self, arms=None) -> pd.DataFrame:
        """What each network of every saved mask costs, one row per ``arm, level, replicate`` (and
        ``prune_fraction``, swept fields): ``total_params``, ``prunable_params``, ``nonzero_params``,
        ``compression`` (total / nonzero), ``dense_flops`` and ``flops`` (multiply-adds per example,
        each layer's count times its density), counted from the masks and the traced model without the
        data (:func:`jaxlth.experiments.run_costs.costs_table`). ``arms``: default every arm with masks."""
        return run_costs.costs_table(self, arms)
