"""A transfer run read back: its arms in order, its main metric, each arm's final value."""

from __future__ import annotations

import math

import pandas as pd

from jaxlth import runs, tables
from jaxlth.experiments.transfer import block
from jaxlth.experiments.transfer.arms import ARMS, BASELINES


def main_metric(table: pd.DataFrame, split: str = "test") -> str:
    """The first metric other than ``loss`` in the ``split`` rows (``accuracy``; a text task's ``mcc``,
    ``pearson``, ...); ``accuracy`` when there is none yet."""
    rows = table[(table["split"] == split) & (table["metric"] != "loss")] if "split" in table else table.iloc[:0]
    return str(rows["metric"].iloc[0]) if len(rows) else "accuracy"


def final_by_arm(table: pd.DataFrame, order, split: str = "test", metric: str | None = None) -> pd.DataFrame:
    """The final ``split`` ``metric`` of every arm over replicates, in ``order`` (arms not in it after).

    Columns ``arm, source_level`` (NaN for the baselines), ``density`` (mean fraction of the
    prunable weights kept), ``mean``, ``std`` (``ddof=1``; NaN for one replicate), ``n``, ``metric``.
    """
    metric = metric or main_metric(table, split)
    stats = tables.summary(table, split, metric, ARMS)
    columns = ["arm", "source_level", "density", "mean", "std", "n", "metric"]
    if stats.empty:
        return pd.DataFrame(columns=columns)
    levels = tables.with_columns(table, "source_level").dropna(subset=["source_level"])
    found = levels.groupby("arm")["source_level"].first().astype(int)
    stats["source_level"] = stats["arm"].map(found).astype("Int64")
    rank = {arm: i for i, arm in enumerate([*order, *sorted(set(stats["arm"]) - set(order))])}
    stats = stats.assign(metric=metric).sort_values("arm", key=lambda arms: arms.map(rank), kind="stable")
    return stats[columns].reset_index(drop=True)


def matching(mean: float, dense_mean: float, dense_std: float) -> bool:
    """Within one dense std of the dense mean, or better."""
    return bool(mean >= dense_mean - (0.0 if math.isnan(dense_std) else dense_std) - 1e-12)


def arm_order(table: pd.DataFrame) -> list[str]:
    """The sources' arms in the order their rows come, then the baselines in :data:`BASELINES` order."""
    seen = list(dict.fromkeys(table["arm"].dropna().astype(str))) if "arm" in table else []
    return [a for a in seen if a not in BASELINES and a not in ARMS.hidden] + [b for b in BASELINES if b in seen]


class TransferRun(runs.Run):
    """A transfer run (``jaxlth.results.load`` of a transfer workdir)."""

    @property
    def arms(self) -> tuple[str, ...]:
        """Every arm in the order of the stacked axis: one per source (its name), then the baselines."""
        return block.arms(self.config["transfer"])

    @property
    def sources(self) -> dict[str, str]:
        """``{arm: source spec}`` of the sources' arms."""
        transfer = self.config["transfer"]
        return dict(zip(block.arm_names(transfer), transfer["sources"]))

    @property
    def target(self) -> str:
        """The task the masks were trained on: ``data.name``."""
        return str(self.config["data"]["name"])

    def main_metric(self, split: str = "test") -> str:
        """The run's main metric: the first non-loss metric of its ``split`` rows."""
        return main_metric(self.table, split)

    def final(self, split: str = "test", metric: str | None = None) -> pd.DataFrame:
        """The final ``split`` ``metric`` (default: the main one) per arm, mean and std over replicates."""
        return final_by_arm(self.table, self.arms, split, metric)
