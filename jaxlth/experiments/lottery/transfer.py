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
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import numpy as np
from flax import traverse_util

from jaxlth import runs
from jaxlth.errors import UserError
from jaxlth.experiments.lottery.arms import ARMS
from jaxlth.experiments.lottery.source import open_lottery
from jaxlth.training import pretrained as pretrained_lib

if TYPE_CHECKING:  # the reader is imported when a source is opened (lottery.source)
    from jaxlth.experiments.lottery.reader import LotteryRun

FIELD = "lottery.mask_source"
CHOICES = ("arm", "replicate", "prune_fraction")


@dataclasses.dataclass(frozen=True)
class MaskSource:
    """The run ``lottery.mask_source`` names: its reader, the arm and prune-fraction coordinates chosen,
    and the source replicate each of this run's replicates takes."""

    run: LotteryRun
    arm: str
    coordinates: dict
    sources: tuple[int, ...]
    field: str = FIELD  # the config field that names it, for messages


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


def source(config) -> MaskSource:
    """The source run, checked without data: a finished lottery run with ``lottery.levels`` levels of
    the chosen arm, one prune fraction chosen."""
    src = open_source(config.lottery.mask_source, FIELD, int(config.replicates))
    levels, wanted = src.run.levels(src.arm), list(range(int(config.lottery.levels) + 1))
    missing = [level for level in wanted if level not in levels]
    if missing:
        raise UserError(
            f"{FIELD} {src.run.workdir} has finished levels {levels or 'none'} of arm {src.arm!r}; lottery.levels = "
            f"{config.lottery.levels} needs levels 0-{config.lottery.levels}"
        )
    return src


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


def check(ctx) -> None:
    """The source's masks against this run's model (its prunable layers and shapes), before anything is written."""
    if ctx.config.lottery.get("mask_source", ""):
        setup = ctx.setup
        masks(source(ctx.config), 0, setup.dense_mask(jax.eval_shape(setup.init_state).params))


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
