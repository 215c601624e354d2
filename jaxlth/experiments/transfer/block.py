"""The ``transfer`` config block: its fields with their defaults, and their checks (the sources'
``config.json`` and tables only, no data)."""

from __future__ import annotations

import os
import re

import ml_collections

from jaxlth import runs
from jaxlth.errors import UserError
from jaxlth.experiments.transfer import source_masks
from jaxlth.experiments.transfer.arms import BASELINES, DENSE, MAGNITUDE, RESERVED

NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")  # an arm: a folder name of artifacts/


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.sources = ()  # finished lottery workdirs[:arm=,replicate=,prune_fraction=] whose masks train here
    c.names = ()  # the arm of each source (): its workdir's basename
    c.density = 0.3  # from each source, the level whose mask density is nearest (a tie: the denser)
    c.baselines = (DENSE, MAGNITUDE)  # dense | magnitude_at_rewind | random
    return c


def arm_names(block) -> tuple[str, ...]:
    """The arm of each source: ``transfer.names``, or the basename of each source's workdir.

    ``block``: the ``transfer`` block, a ConfigDict or the dict of a saved ``config.json``.
    """
    if block.get("names"):
        return tuple(block["names"])
    paths = [runs.split_selection(spec, source_masks.FIELD)[0] for spec in block["sources"]]
    return tuple(os.path.basename(str(path).rstrip("/")) for path in paths)


def arms(block) -> tuple[str, ...]:
    """Every arm, in the order of the stacked axis: the sources', then the baselines."""
    return (*arm_names(block), *block["baselines"])


def check_baselines(names) -> None:
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise UserError(f"unknown transfer.baselines entry {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    if len(set(names)) != len(names):
        raise UserError(f"transfer.baselines lists a baseline twice: {tuple(names)}")


def check_names(block) -> None:
    """One arm name per source, each a plain folder name used once and by no baseline."""
    sources, given = tuple(block.sources), tuple(block.names)
    if given and len(given) != len(sources):
        raise UserError(f"transfer.names gives {len(given)} name(s) for {len(sources)} source(s); give one per source")
    names = arm_names(block)
    how = "transfer.names" if given else "the sources' workdir basenames (set transfer.names)"
    for name in names:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise UserError(f"{how}: {name!r} cannot name an arm; use letters, digits and _ - . +")
        if name in (*BASELINES, *RESERVED):
            raise UserError(f"{how}: {name!r} is the name of a baseline or an artifact; give the source another")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{how}: two sources are named {twice[0]!r}; each source needs its own name")


def validate(config) -> None:
    block = config.transfer
    if not block.sources:
        raise UserError("transfer.sources is empty; give finished lottery workdirs, e.g. ('runs/a', 'runs/b')")
    density = block.density
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density < 1.0:
        raise UserError(f"transfer.density must be a number in (0, 1), got {density!r}")
    check_baselines(tuple(block.baselines))
    check_names(block)
    for spec in block.sources:
        source_masks.open_source(spec, int(config.replicates))


def widths(config) -> tuple[int, int]:
    """Every arm trains at once: the sources' masks and the baselines, per replicate."""
    count = max(1, len(config.transfer.sources) + len(config.transfer.baselines))
    return count, count
