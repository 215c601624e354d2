"""The experiment protocol: what a module declares to be an experiment kind.

A module of ``jaxlth.experiments`` (or a package inside it) becomes the experiment
``config.experiment == NAME`` by defining ``EXPERIMENT = Experiment(...)``; the registry finds it,
``base_config()`` adds its config block, the CLI lists it, and ``jaxlth.experiments.run`` runs it.
Nothing else in jaxlth needs to change. See ``docs/design.md`` ("Adding an experiment").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections


def _nothing(config) -> None:
    return None


def _one_each(config) -> tuple[int, int]:
    return 1, 1


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment kind.

    Attributes:
      name: the value of ``config.experiment``; also the name of its config block, if any.
      summary: one line for ``--help`` and the docs.
      run: ``run(context) -> Any`` does (or resumes, or extends) the work in ``context.layout``.
      defaults: ``() -> ConfigDict``, the config block ``config.<name>`` with its defaults
        (``None``: the experiment has no block of its own).
      validate: ``validate(config)`` raises :class:`~jaxlth.errors.UserError` with one sentence;
        it runs before any data is loaded and before anything is written.
      columns: the extra coordinates its rows carry in ``results.csv`` besides the core columns.
      may_change: dotted config fields a rerun on an existing workdir may change (e.g. a level
        count that grows); every other field it reads must equal the saved config.
      reads: dotted fields of other blocks it reads (e.g. ``lottery.layers_to_ignore``); with its
        own block and the common fields they are what a workdir's saved config must match.
      report: ``report(table, plots_dir) -> (text, [figure paths])``: the terminal summary and the
        figures of a (possibly unfinished) run, from its results table.
      order: position in listings (``train`` first).
      widths: ``widths(config) -> (trained, evaluated)``: the networks per replicate its widest
        training and evaluation programs stack on the vmapped axis (copies, densities, particles,
        interpolation points); :mod:`jaxlth.experiments.replicates` multiplies a network's memory
        by them to find how many replicates fit on a device.
    """

    name: str
    summary: str
    run: Callable[[Any], Any]
    defaults: Callable[[], ml_collections.ConfigDict] | None = None
    validate: Callable[[ml_collections.ConfigDict], None] = _nothing
    columns: tuple[str, ...] = ()
    may_change: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    report: Callable[[Any, str], tuple[str, list[str]]] | None = None
    order: int = 100
    widths: Callable[[ml_collections.ConfigDict], tuple[int, int]] = _one_each
