"""A lottery run read back: its prune fractions, and the ``R * F`` networks of a sweep selected by
``prune_fraction=``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import runs
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
