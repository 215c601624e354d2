"""The ``prune_at_init`` config block: its fields with their defaults, their checks (the source runs'
configs, no data), and the networks it stacks per replicate."""

from __future__ import annotations

import ast

import ml_collections

from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.pruning import at_init
from jaxlth.pruning import prune as prune_lib

ABLATIONS = ("shuffle", "reinit", "invert")
NONE = "none"
BATCHNORM = ("batch", "running")  # the statistics SNIP and GraSP normalise with while scoring
REFERENCE_ARMS = {"weight_rewind": "imp", "lr_rewind": "lr_rewind", "finetune": "finetune"}


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(type_safe=False)  # source_workdir: one path or a tuple
    c.methods = ("random", "magnitude", "snip", "grasp", "synflow")  # + uniform, erk
    c.densities = (0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)  # fractions kept; (): the sources' levels
    c.at = "0it"  # step spec k: the network pruned and trained from (0: initialisation)
    c.scope = "global"  # global | layerwise | erk: how scores are ranked (not uniform / erk methods)
    c.ablations = ()  # shuffle | reinit | invert, each trained beside every non-random method
    c.rounds = 0  # scoring rounds (exponential schedule); 0: each scorer's own (SynFlow 100, others 1)
    c.examples_per_class = 10  # training examples of each class SNIP and GraSP score on
    c.batchnorm = "batch"  # batch | running: BatchNorm statistics while SNIP and GraSP score
    c.source_workdir = ""  # lottery workdir(s) drawn as reference lines (IMP, LR rewinding)
    return c


def names(value) -> tuple:
    """A tuple (a single value becomes one)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def sources(config) -> tuple[str, ...]:
    """The reference lottery workdirs (none for ``""``): a path, a tuple of paths, or the command
    line's ``"('runs/a', 'runs/b')"`` or ``runs/a,runs/b``."""
    value = config.prune_at_init.source_workdir
    if isinstance(value, str) and value.strip()[:1] in "([" and value.strip():
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise UserError(f"prune_at_init.source_workdir {value!r} is not a path or a tuple of paths") from None
    elif isinstance(value, str):
        value = value.split(",")
    return tuple(str(s).strip() for s in names(value) if str(s).strip())


def validate(config) -> None:
    pai = config.prune_at_init
    methods = [at_init.method(m, "prune_at_init.methods entry") for m in names(pai.methods)]
    if not methods:
        raise UserError("prune_at_init.methods is empty; name methods such as ('random', 'snip', 'synflow')")
    if len({m.name for m in methods}) != len(methods):
        raise UserError(f"prune_at_init.methods lists a method twice: {tuple(pai.methods)}")
    densities = [float(d) for d in names(pai.densities)]
    if any(not 0.0 < d < 1.0 for d in densities):
        raise UserError(f"prune_at_init.densities must lie in (0, 1), got {tuple(densities)}")
    if len(set(densities)) != len(densities):
        raise UserError(f"prune_at_init.densities lists a density twice: {tuple(densities)}")
    if not densities and not sources(config):
        raise UserError("prune_at_init.densities is empty and no prune_at_init.source_workdir gives its levels")
    if pai.scope not in prune_lib.SCOPES:
        raise UserError(f"unknown prune_at_init.scope {pai.scope!r}; choose {', '.join(prune_lib.SCOPES)}")
    for a in names(pai.ablations):
        if a not in ABLATIONS:
            raise UserError(f"unknown prune_at_init.ablations entry {a!r}; choose from {', '.join(ABLATIONS)}")
    if len(set(names(pai.ablations))) != len(names(pai.ablations)):
        raise UserError(f"prune_at_init.ablations lists an ablation twice: {tuple(pai.ablations)}")
    for field in ("rounds", "examples_per_class"):
        value = pai[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UserError(f"prune_at_init.{field} must be a non-negative integer, got {value!r}")
    needing = [m.name for m in methods if at_init.scorer(m.scorer, "scorer").needs_data]
    if needing and pai.examples_per_class == 0:
        raise UserError(
            f"prune_at_init.methods {', '.join(needing)} score on training examples, but "
            f"prune_at_init.examples_per_class = 0 gives them none"
        )
    if pai.batchnorm not in BATCHNORM:
        raise UserError(f"unknown prune_at_init.batchnorm {pai.batchnorm!r}; choose batch or running")
    if step_specs.before(pai.at, config.train.steps, "prune_at_init.at", "train.steps") is False:
        raise UserError(f"prune_at_init.at ({pai.at}) must come before the end of training ({config.train.steps})")
    modes = [
        lottery_source(w, config, "prune_at_init.source_workdir").config["lottery"]["retrain"] for w in sources(config)
    ]
    if len(set(modes)) != len(modes):
        raise UserError(f"prune_at_init.source_workdir names two lottery runs with the same lottery.retrain {modes}")


def widths(config) -> tuple[int, int]:
    """A method trains its densities, times its ablations unless it is random, at once. Densities
    ``()`` are the sources' pruned levels (read from their ``config.json`` and level folders)."""
    pai = config.prune_at_init
    count = len(names(pai.densities))
    if not count:
        found = set()
        for workdir in sources(config):
            run = lottery_source(workdir, config, "prune_at_init.source_workdir")
            found |= {round((1 - p) ** level, 6) for p in run.fractions for level in run.levels() if level > 0}
        count = len(found)
    ablated = any(not at_init.METHODS[m].is_random for m in names(pai.methods) if m in at_init.METHODS)
    width = max(1, count) * (1 + len(names(pai.ablations)) if ablated else 1)
    return width, width
