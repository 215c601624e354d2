"""``lottery.mask_source``: the masks of another lottery run, trained here (mask transfer).

The transfer experiments of the pretrained-tickets papers (Chen et al. 2020, 2021) find a mask on
one task (or objective) and train it on another. With ``lottery.mask_source = DIR`` (or
``DIR:arm=imp,replicate=0,prune_fraction=0.2``) level ``L`` of this run trains the source's level
``L`` mask of that arm instead of pruning its own level ``L - 1``: from this run's rewind network, on
this run's data and training. The branches transform the transferred mask as they transform an
IMP mask (``random_prune``: a random mask of the same per-layer density). A source of as many
replicates as this run gives replicate ``r`` its replicate ``r``'s masks; otherwise every
replicate takes the chosen one (``replicate=``, default 0).

The prunable layers and their shapes must be this run's: masks of another model, or of a run that
prunes layers this one keeps dense, are refused in one sentence. ``config.json`` keeps the path;
each transferred mask also writes one row per replicate ``split=mask, metric=source_replicate``
(:func:`with_source_rows`).

Composed masks (Movva et al. 2021): ``DIR_0 & DIR_1 & ...`` trains at level ``L`` the intersection of
the sources' level-``L`` masks (the weights all of them keep), ``DIR_0 | DIR_1 | ...`` their union;
each term is a source as above (``runs/a:replicate=0 & runs/a:replicate=1``: two seeds of one run),
one operation per expression. Replicate ``r`` composes the masks each source gives it. Besides the
composed mask's density rows, each level records what it composed (:func:`composed_rows`): per
replicate the replicate of source ``i`` (``metric=source_replicate_i``), and per layer and over all
prunable weights (``layer`` empty) each source mask's density (``source_density_i``), their overlap
``|∩| / |∪|`` (``source_overlap``) and its value for random masks of the same per-layer counts
(``source_chance``, :mod:`jaxlth.pruning.mask_algebra`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import jax
import numpy as np
from flax import traverse_util

from jaxlth import runs
from jaxlth.errors import UserError
from jaxlth.experiments.lottery.arms import ARMS
from jaxlth.experiments.lottery.source import open_lottery
from jaxlth.pruning import mask_algebra
from jaxlth.training import pretrained as pretrained_lib

if TYPE_CHECKING:  # the reader is imported when a source is opened (lottery.source)
    from jaxlth.experiments.lottery.reader import LotteryRun

FIELD = "lottery.mask_source"
CHOICES = ("arm", "replicate", "prune_fraction")
OPERATORS = {"&": "intersection", "|": "union"}  # between the sources of a composed lottery.mask_source


@dataclasses.dataclass(frozen=True)
class MaskSource:
    """The run ``lottery.mask_source`` names: its reader, the arm and prune-fraction coordinates chosen,
    and the source replicate each of this run's replicates takes."""

    run: LotteryRun
    arm: str
    coordinates: dict
    sources: tuple[int, ...]
    field: str = FIELD  # the config field that names it, for messages


@dataclasses.dataclass(frozen=True)
class MaskSources:
    """What ``lottery.mask_source`` names: one source (``operation`` ``None``), or the sources whose
    masks ``operation`` (``"intersection"`` or ``"union"``) composes."""

    parts: tuple[MaskSource, ...]
    operation: str | None = None


def split(spec, field: str) -> tuple[str | None, list[str]]:
    """``"A & B"`` -> ``("intersection", ["A", "B"])``, ``"A | B"`` -> ``("union", ...)``, ``"A"`` ->
    ``(None, ["A"])``: the operation and the source specs of a ``lottery.mask_source``."""
    if not isinstance(spec, str):
        raise UserError(f"{field} must be a path (a string), got {spec!r}")
    used = [op for op in OPERATORS if op in spec]
    if not used:
        return None, [spec]
    if len(used) > 1:
        raise UserError(f"{field} {spec!r} mixes & and |; compose with one of them (an intersection or a union)")
    terms = [term.strip() for term in spec.split(used[0])]
    if not all(terms):
        raise UserError(
            f"{field} {spec!r} has an empty term; write DIR {used[0]} DIR (each DIR[:arm=,replicate=,prune_fraction=])"
        )
    twice = [term for i, term in enumerate(terms) if term in terms[:i]]
    if twice:
        raise UserError(f"{field} {spec!r} names {twice[0]} twice")
    return OPERATORS[used[0]], terms


def open_source(spec, field: str, replicates: int) -> MaskSource:
    """The lottery run ``spec`` (``DIR[:arm=,replicate=,prune_fraction=]``, named by the config field
    ``field``) for a run of ``replicates`` replicates, checked without data: one prune fraction chosen,
    a source replicate for each replicate."""
    if not isinstance(spec, str):
        raise UserError(f"{field} must be a path (a string), got {spec!r}")
    path, chosen = runs.split_selection(spec, field)
    unknown = [k for k in chosen if k not in CHOICES]
    if unknown:
        raise UserError(f"{field} {spec}: cannot choose {unknown[0]!r}; choose by {', '.join(CHOICES)}")
    run = open_lottery(path, field)
    if len(run.fractions) > 1 and "prune_fraction" not in chosen:
        raise UserError(f"{field} {path} sweeps prune fractions {run.fractions}; choose one with :prune_fraction=")
    count, where = int(run.config["replicates"]), f"{field} {path}"
    sources = pretrained_lib.select(count, replicates, chosen.get("replicate"), where)
    coordinates = {k: v for k, v in chosen.items() if k == "prune_fraction"}
    return MaskSource(run, chosen.get("arm", ARMS.main), coordinates, sources, field)


def source(config) -> MaskSources:
    """The source runs, checked without data: finished lottery runs with ``lottery.levels`` levels of
    the chosen arms, one prune fraction chosen in each."""
    operation, specs = split(config.lottery.mask_source, FIELD)
    parts = tuple(open_source(spec, FIELD, int(config.replicates)) for spec in specs)
    for src in parts:
        levels, wanted = src.run.levels(src.arm), list(range(int(config.lottery.levels) + 1))
        missing = [level for level in wanted if level not in levels]
        if missing:
            raise UserError(
                f"{FIELD} {src.run.workdir} has finished levels {levels or 'none'} of arm {src.arm!r}; "
                f"lottery.levels = {config.lottery.levels} needs levels 0-{config.lottery.levels}"
            )
    return MaskSources(parts, operation)


def masks(src: MaskSource, level: int, dense_mask) -> dict:
    """The source's level ``level`` masks for this run's ``R`` replicates (stacked ``(R, ...)``,
    numpy); ``dense_mask``: this run's dense mask (stacked), whose layers and shapes they must have."""
    theirs = traverse_util.flatten_dict(pretrained_lib.plain(src.run.mask(level, None, src.arm, **src.coordinates)))
    mine = traverse_util.flatten_dict(pretrained_lib.plain(dense_mask))
    where = f"{src.field} {src.run.workdir}"
    for path in sorted(set(theirs) | set(mine)):
        name = "/".join(path)
        if path not in theirs:
            raise UserError(f"{where} keeps {name} dense, which this run prunes; the prunable layers differ")
        if path not in mine:
            raise UserError(f"{where} prunes {name}, which this run keeps dense; the prunable layers differ")
        if tuple(theirs[path].shape[1:]) != tuple(mine[path].shape[1:]):
            raise UserError(
                f"{where} has a mask of shape {tuple(theirs[path].shape[1:])} for {name}, "
                f"this model {tuple(mine[path].shape[1:])}: the models differ"
            )
    picked = {path: np.asarray(leaf)[np.asarray(src.sources)] for path, leaf in theirs.items()}
    return traverse_util.unflatten_dict(picked)


def composed(srcs: MaskSources, level: int, dense_mask) -> dict:
    """The level ``level`` masks ``lottery.mask_source`` gives this run's replicates (stacked, numpy):
    one source's (:func:`masks`), or the intersection or union of the sources'."""
    parts = [masks(src, level, dense_mask) for src in srcs.parts]
    if srcs.operation is None:
        return parts[0]
    return jax.tree.map(np.asarray, mask_algebra.compose(srcs.operation, *parts))


def check(ctx) -> None:
    """The sources' masks against this run's model (its prunable layers and shapes), before anything is written."""
    if ctx.config.lottery.get("mask_source", ""):
        setup = ctx.setup
        dense = setup.dense_mask(jax.eval_shape(setup.init_state).params)
        for src in source(ctx.config).parts:
            masks(src, 0, dense)


def with_source_rows(src: MaskSource, density_rows: list[dict]) -> list[dict]:
    """A carried mask's per-layer density rows and, per replicate, one ``metric=source_replicate`` row
    (its labels, step and density those of the replicate's first density row): the source replicate."""
    first = {}
    for row in density_rows:
        first.setdefault(row["replicate"], row)
    extra = [
        {**{k: v for k, v in first[r].items() if k != "layer"}, "metric": "source_replicate", "value": float(s)}
        for r, s in enumerate(src.sources)
    ]
    return density_rows + extra


def composed_rows(
    srcs: MaskSources, level: int, dense_mask: Callable[[], dict], density_rows: list[dict]
) -> list[dict]:
    """The rows of a mask from ``lottery.mask_source``: one source's (:func:`with_source_rows`), or for a
    composition its density rows and per replicate ``source_replicate_i`` (the replicate source ``i``
    gave it) and, per layer and over all prunable weights (``layer`` empty), ``source_density_i``,
    ``source_overlap`` and ``source_chance`` of the sources' masks (:func:`.mask_algebra.agreement_rows`);
    ``dense_mask()``: this run's dense mask (stacked)."""
    if srcs.operation is None:
        return with_source_rows(srcs.parts[0], density_rows)
    first = {}
    for row in density_rows:
        first.setdefault(row["replicate"], {k: v for k, v in row.items() if k != "layer"})
    dense = dense_mask()
    parts = [masks(src, level, dense) for src in srcs.parts]
    extra = [
        {**first[r], "metric": f"source_replicate_{i}", "value": float(src.sources[r])}
        for r in sorted(first)
        for i, src in enumerate(srcs.parts)
    ]
    for row in mask_algebra.agreement_rows(*parts, replicate_axis=True):
        where = {} if row["layer"] == mask_algebra.ALL else {"layer": row["layer"]}
        values = {f"source_density_{i}": row[f"density_{i}"] for i in range(len(parts))}
        values.update(source_overlap=row["overlap"], source_chance=row["chance"])
        extra += [{**first[row["replicate"]], **where, "metric": k, "value": v} for k, v in values.items()]
    return density_rows + extra
