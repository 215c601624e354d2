"""The barriers and interpolation curves of an instability table, as tables the figures draw.

Barrier rows (``metric`` ``barrier_frankle`` / ``barrier_paul``) and interpolation curves
(``metric=error`` with ``alpha``) of three analyses: copies spawned at ``spawn_step``
(arm ``copies``), successive IMP levels (arm ``between_levels``, ``pair`` ``"L-L+1"``) and
perturbations of the rewind point (arm ``perturb``, keyed by ``noise_scale``; tables written
before that column existed hold the scale in ``pair``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import tables
from jaxlth.experiments.instability.arms import COPIES, PERTURB

BARRIERS = {"barrier_frankle": "Frankle et al. 2020", "barrier_paul": "Paul et al. 2022"}

# The optional columns of instability rows; tables of other experiments may lack them.
OPTIONAL = ("spawn_step", "pair", "alpha", "noise_scale", "align")


def rows_of(table: pd.DataFrame, arm: str, align: str | None = "none") -> pd.DataFrame:
    """The instability rows of ``arm`` measured with alignment ``align`` (``None``: every alignment;
    rows written before alignments existed count as ``"none"``)."""
    rows = table[(table["arm"] == arm)]
    if "experiment" in rows:
        rows = rows[rows["experiment"] == "instability"]
    rows = tables.with_columns(rows, *OPTIONAL)
    modes = rows["align"].fillna("none").replace("", "none")
    return rows.assign(align=modes) if align is None else rows[modes == align].assign(align=align)


def noise_scale(rows: pd.DataFrame) -> pd.Series:
    """The numeric noise scale of perturbation rows: ``noise_scale``, else ``pair`` (older tables)."""
    scale = pd.to_numeric(rows["noise_scale"], errors="coerce")
    return scale.fillna(pd.to_numeric(rows["pair"], errors="coerce")).astype(float)


def key_of(arm: str) -> str:
    """The column that tells the curves and barriers of ``arm`` apart."""
    return {COPIES: "spawn_step", PERTURB: "noise_scale"}.get(arm, "pair")


def barriers(table: pd.DataFrame, arm: str = COPIES) -> pd.DataFrame:
    """Barrier mean and std (over replicates and pairs) per level, spawn step, pair kind and split.

    Columns: ``level, spawn_step, pair, split, metric, mean, std, n`` (errors as fractions), after
    the settings' columns (``lr``, ...) of a hyper-parameter sweep.
    For ``arm="copies"`` pairs of copies are pooled (``pair`` is ``"all"``); for ``arm="perturb"``
    the column ``noise_scale`` (a float) replaces ``pair``.
    """
    key = "noise_scale" if arm == PERTURB else "pair"
    keys = [*tables.setting_columns(table), "level", "spawn_step", key, "split", "metric"]  # never over settings
    rows = rows_of(table, arm)
    rows = rows[rows["metric"].isin(list(BARRIERS))].copy()
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    if arm == COPIES:
        rows["pair"] = "all"
    if arm == PERTURB:
        rows["noise_scale"] = noise_scale(rows)
    rows["spawn_step"] = pd.to_numeric(rows["spawn_step"], errors="coerce")
    grouped = rows.groupby(keys, dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return grouped.rename(columns={"count": "n"})


def percent_pm(mean: float, std: float) -> str:
    """A fraction's ``mean ± std`` in percent (``mean`` alone when ``std`` is not finite)."""
    return f"{100 * mean:.2f}" if not np.isfinite(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def sort_key(value):
    """Numbers by value, other labels as text."""
    return float(value) if str(value).replace(".", "", 1).isdigit() else str(value)


def curves(table: pd.DataFrame, arm: str, split: str) -> pd.DataFrame:
    """The ``split`` error rows along interpolation paths of ``arm``, ``alpha`` numeric."""
    rows = rows_of(table, arm)
    rows = rows[(rows["metric"] == "error") & (rows["split"] == split)].copy()
    rows["alpha"] = pd.to_numeric(rows["alpha"], errors="coerce")
    if arm == PERTURB:
        rows["noise_scale"] = noise_scale(rows)
    return rows.dropna(subset=["alpha"])
