"""The experiment protocol: what a folder declares to be an experiment kind.

A folder of ``jaxlth/experiments/`` (or a module outside jaxlth, named by ``experiment_module`` or
by an entry point of the group ``jaxlth.experiments``) becomes the experiment ``NAME`` by defining
``EXPERIMENT = Experiment(name="NAME", ...)``. Every question shared code asks about an experiment
is answered by its declaration: its config block, the fields it reads, whether it can stream its
data, its random streams, the columns and arms of its rows, its reader, its report and figures.
Nothing else in jaxlth names an experiment. See ``docs/design.md`` and ``docs/extending.md``.

What only a run needs (``run``, ``check``, ``reader``, ``report``, ``figures``) may be named rather
than imported, ``lazy("package.module:name")``: it is imported the first time the field is read, so
reading and checking a config imports no experiment's training, reading or drawing code.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
from typing import Any, Callable

import ml_collections

from jaxlth import rng, runs
from jaxlth.errors import UserError
from jaxlth.legend import MAIN, Arms

__all__ = ["MAIN", "Arms", "Experiment", "Lazy", "lazy"]
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A part of a declaration named, not imported: ``"package.module:name"`` (``name`` may be dotted,
    ``Class.method``) or ``"package.module"`` (the module itself)."""

    target: str

    def resolve(self, where: str = "") -> Any:
        """The object named, its module imported now (UserError when it cannot be, naming ``where``)."""
        module_name, _, name = self.target.partition(":")
        try:
            found = importlib.import_module(module_name)
            for part in name.split(".") if name else ():
                found = getattr(found, part)
        except (ImportError, AttributeError) as e:
            raise UserError(f"{where or 'lazy'}({self.target!r}) cannot be imported ({type(e).__name__}: {e})") from e
        return found


def lazy(target: str) -> Lazy:
    """``target`` (``"package.module:name"`` or ``"package.module"``) imported on first use, e.g.
    ``run=lazy("mypkg.myexp.run:run")``, ``figures=lazy("mypkg.myexp.figures")``."""
    if not isinstance(target, str) or not _TARGET.fullmatch(target):
        raise ValueError(f"lazy() takes 'package.module:name' or 'package.module', got {target!r}")
    return Lazy(target)


def _nothing(config) -> None:
    return None


def _one_each(config) -> tuple[int, int]:
    return 1, 1


@dataclasses.dataclass(frozen=True, eq=False)  # compared and hashed by identity
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
      check: ``check(context)``: what can only be checked with the data and the model
        (``context.setup``), e.g. another run's masks against this model; one sentence, before the
        workdir is claimed or anything written.
      columns: the extra coordinates its rows carry in ``results.csv`` besides the core columns.
      arms: its arms (:class:`jaxlth.legend.Arms`): their legend labels in order, the main arm (the
        one the results API reads when none is named), the arms its tables leave out.
      streams: its random streams (:class:`jaxlth.rng.Stream`), checked against every other.
      streamable: whether it can train on a streamed dataset (read in training order only).
      sweeps: whether it trains hyper-parameter sweeps in one program (``train.lr``, ``momentum``,
        ``weight_decay``, ``warmup`` as tuples, :mod:`jaxlth.training.hyper`): every stack it trains
        holds the settings setting-major and every row carries their values.
      tuple_fields: dotted fields of its block that take a number or a tuple of numbers on the
        command line (``--config.lottery.prune_fraction=0.2,0.4``).
      may_change: dotted config fields a rerun on an existing workdir may change (e.g. a level
        count that grows); every other field it reads must equal the saved config.
      reads: dotted fields of other experiments' blocks it reads; with the common fields and its
        own block they are what a workdir's saved config must match.
      reader: the class ``jaxlth.results.load`` returns for its runs (:class:`jaxlth.runs.Run` or a
        subclass adding its readers, e.g. ``run.scores(...)``).
      report: ``report(run, plots_dir) -> (text, [figure paths])``: the terminal summary and the
        figures of a (possibly unfinished) run, from its reader.
      figures: a module whose ``__all__`` names its public tables and figures: they are
        ``jaxlth.plots.NAME`` too.
      order: position in listings (``train`` first).
      widths: ``widths(config) -> (trained, evaluated)``: the networks per replicate its widest
        training and evaluation programs stack on the vmapped axis (copies, densities, particles,
        interpolation points); :mod:`jaxlth.experiments.replicates` multiplies a network's memory
        by them to find how many replicates fit on a device.

    Any field holding a callable, a class or a module may be given as :func:`lazy`; reading the
    field imports it then (once) and returns the object itself.
    """

    name: str
    summary: str
    run: Callable[[Any], Any] | Lazy
    defaults: Callable[[], ml_collections.ConfigDict] | None = None
    validate: Callable[[ml_collections.ConfigDict], None] = _nothing
    check: Callable[[Any], None] | Lazy = _nothing
    columns: tuple[str, ...] = ()
    arms: Arms = Arms()
    streams: tuple[rng.Stream, ...] = ()
    streamable: bool = False
    sweeps: bool = False
    tuple_fields: tuple[str, ...] = ()
    may_change: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    reader: type | Lazy = runs.Run
    report: Callable[[Any, str], tuple[str, list[str]]] | Lazy | None = None
    figures: types.ModuleType | Lazy | None = None
    order: int = 100
    widths: Callable[[ml_collections.ConfigDict], tuple[int, int]] = _one_each

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if isinstance(value, Lazy):  # named with lazy(): imported on first use, then kept
            value = value.resolve(f"the experiment {object.__getattribute__(self, 'name')!r} declares {name}=lazy")
            object.__setattr__(self, name, value)
        return value

    def figure_names(self) -> dict[str, Any]:
        """``{name: object}`` of the public tables and figures of :attr:`figures`."""
        if self.figures is None:
            return {}
        return {name: getattr(self.figures, name) for name in getattr(self.figures, "__all__", ())}
