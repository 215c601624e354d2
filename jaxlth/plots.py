"""Every table and figure jaxlth makes, by one name: ``jaxlth.plots.NAME``.

Every function takes the DataFrame of ``results.csv`` (``jaxlth.results.load(workdir).table``;
the per-example score figures take the loaded run), so the same code serves the command line and
a notebook::

    run = jaxlth.results.load("runs/lenet_lottery")
    print(jaxlth.plots.format_summary(run.table))
    jaxlth.plots.accuracy_vs_weights(run.table)
    jaxlth.plots.accuracy_vs(run, x="flops")   # a lottery run: against its masks' FLOPs

Here: the tables every experiment's rows make (:func:`final_metrics`, :func:`summary`,
:func:`format_summary`; given a lottery run, with what its networks cost: ``run.costs()``), the
accuracy against weights remaining (:func:`accuracy_vs_weights`) or against compression, nonzero
parameters or FLOPs (:func:`accuracy_vs`), all
labelled and ordered by the arms the table's experiment declares, and runs side by side
(:mod:`jaxlth.compare`), and the loss over the plane through three networks (:func:`loss_plane`, of a
:func:`jaxlth.analysis.plane.through`). Every other name is a table or figure an experiment declares
(``Experiment.figures``, in ``jaxlth/experiments/<name>/``): ``dir(jaxlth.plots)`` lists them, and
``jaxlth.plots.<experiment>`` is that experiment's whole figures module.

Units: ``density`` columns are fractions of the prunable weights kept (1.0 = dense);
``percent_remaining`` and the axes show percentages; accuracies are fractions in the table and
percentages on axes and in :func:`format_summary`. Standard deviations are over replicates
(sample std, ``ddof=1``; NaN in :func:`summary` for a single replicate).

Functions given ``ax=None`` draw on a new pyplot figure (inline in a notebook; matplotlib falls
back to the Agg backend without a display). The ``save_*`` functions never touch pyplot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from jaxlth import drawing, tables
from jaxlth.analysis.plane_figure import loss_plane
from jaxlth.compare import (
    BARRIER_COMPARE_FIGURE,
    COMPARE_FIGURE,
    accuracy_comparison,
    barrier_comparison,
    comparison_table,
    format_comparison,
    rewind_barrier_table,
    save_comparison_figures,
)
from jaxlth.experiments import registry
from jaxlth.legend import Arms

__all__ = [
    "arms_of",
    "final_metrics",
    "summary",
    "format_summary",
    "accuracy_vs_weights",
    "accuracy_vs",
    "table_and_costs",
    "COMPARE_FIGURE",
    "BARRIER_COMPARE_FIGURE",
    "comparison_table",
    "rewind_barrier_table",
    "format_comparison",
    "accuracy_comparison",
    "barrier_comparison",
    "save_comparison_figures",
    "loss_plane",
]


def arms_of(table: pd.DataFrame) -> Arms:
    """The arms of the experiment whose rows ``table`` holds (its main arm, its labels first), with
    every other experiment's labels after them (rows copied from another run keep theirs)."""
    known = registry.all_experiments()
    names = table["experiment"].dropna().unique() if "experiment" in table else []
    found = [known[name].arms for name in names if name in known]
    arms = found[0] if found else Arms()
    for other in [*found[1:], *(e.arms for e in known.values())]:
        arms = arms.merged(other)
    return arms


def final_metrics(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """:func:`jaxlth.tables.final_metrics` with the table's arms."""
    return tables.final_metrics(table, split, metric, arms_of(table))


def table_and_costs(table_or_run, costs: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(table, costs)`` of a results table (no costs) or of a loaded run (``run.table`` and, with
    ``costs`` and a reader that counts them, ``run.costs()``: a lottery run's)."""
    if isinstance(table_or_run, pd.DataFrame):
        return table_or_run, None
    counted = table_or_run.costs() if costs and hasattr(table_or_run, "costs") else None
    return table_or_run.table, counted


def summary(table, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """:func:`jaxlth.tables.summary` with the table's arms; given a run that counts its costs instead of
    its table (a lottery run), with its cost columns (``nonzero_params``, ``compression``, ``flops``, ...)."""
    table, costs = table_and_costs(table)
    return tables.summary(table, split, metric, arms_of(table), costs)


def format_summary(table, split: str = "test", metric: str = "accuracy") -> str:
    """:func:`jaxlth.tables.format_summary` with the table's arms (given a lottery run: with its costs)."""
    table, costs = table_and_costs(table)
    return tables.format_summary(table, split, metric, arms_of(table), costs)


def accuracy_vs_weights(
    table: pd.DataFrame, ax=None, metric: str = "accuracy", split: str = "test", title: str | None = None
):
    """:func:`jaxlth.drawing.accuracy_vs_weights` with the table's arms."""
    return drawing.accuracy_vs_weights(table, ax, metric, split, title, arms_of(table))


def accuracy_vs(
    table_or_run,
    ax=None,
    x: str = "density",
    metric: str = "accuracy",
    split: str = "test",
    title: str | None = None,
    costs: pd.DataFrame | None = None,
):
    """:func:`jaxlth.drawing.accuracy_vs` with the table's arms: final accuracy against ``x`` in
    ``density`` (% weights remaining), ``compression``, ``nonzero`` (parameters) or ``flops``
    (multiply-adds per example). All but ``density`` need a run that counts its costs
    (``jaxlth.results.load(workdir)`` of a lottery run) or ``costs=run.costs()`` beside a table."""
    table, counted = table_and_costs(table_or_run, costs is None and x != "density")
    costs = costs if costs is not None else counted
    return drawing.accuracy_vs(table, ax, metric, split, title, arms_of(table), x=x, costs=costs)


def declared() -> dict[str, Any]:
    """``{name: object}`` of the tables and figures the experiments declare (the first declaration
    of a name wins, in listing order)."""
    out: dict[str, Any] = {}
    for experiment in registry.all_experiments().values():
        for name, value in experiment.figure_names().items():
            out.setdefault(name, value)
    return out


def __getattr__(name: str):
    """An experiment's table or figure; an experiment's name: its figures module (``jaxlth.plots.landscape``,
    ``from jaxlth.plots import data_diet``); ``ARM_LABELS``: every experiment's arm labels."""
    if name == "ARM_LABELS":
        return dict(arms_of(pd.DataFrame()).labels)
    found = declared()
    if name in found:
        return found[name]
    experiments = registry.all_experiments()
    if name in experiments and experiments[name].figures is not None:
        return experiments[name].figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    kinds = [name for name, e in registry.all_experiments().items() if e.figures is not None]
    return sorted({*globals(), *declared(), *kinds, "ARM_LABELS"})
