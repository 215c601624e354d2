"""The ``lottery`` config block: its fields with their defaults, and their checks (no data read)."""

from __future__ import annotations

import ml_collections

from jaxlth import fields, subsets
from jaxlth import steps as step_specs
from jaxlth.data import selection, streams
from jaxlth.errors import UserError
from jaxlth.experiments.lottery import transfer
from jaxlth.pruning import at_init, imp
from jaxlth.pruning import branches as branches_lib
from jaxlth.training import hyper


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(type_safe=False)  # prune_fraction: a number or a tuple (a sweep)
    c.levels = 0  # pruning levels after the dense level 0
    c.rewind = "0it"  # step spec k: weights (and BN statistics) rewind to step k; "pretrained": to model.pretrained
    c.prune_fraction = 0.2  # of the remaining prunable weights, per level; a tuple sweeps fractions
    c.prune_of = "remaining"  # remaining: density (1 - p)^L; original: p of the original weights per level, 1 - p L
    c.scope = "global"  # global | layerwise | erk: how magnitude pruning spreads over layers
    c.retrain = "weight_rewind"  # weight_rewind | lr_rewind | finetune (Renda et al. 2020)
    c.branches = ()  # control arms run at every pruned level, see jaxlth/pruning/branches.py
    c.random_prune_scope = "layerwise"  # random_prune: same per-layer density | global density
    c.retrain_overrides = ""  # retrain branch: train fields, e.g. "lr=0.05,optimizer=adam"
    c.scorer = "magnitude"  # what each level ranks: magnitude | random | snip | grasp | synflow (jaxlth/pruning)
    c.scorer_rounds = 0  # the scorer's rounds per level (exponential schedule); 0: its own (SynFlow 100)
    c.scorer_examples_per_class = 10  # training examples of each class a data scorer (snip, grasp) uses
    c.average_copies = 1  # > 1: each level trains this many particles and continues from their average (SWAMP)
    c.average_bn_batches = 10  # training batches the average's BatchNorm statistics are recomputed from
    c.average_swa_start = ""  # step spec: each particle also averages its iterates at every epoch end from here (SWAMP)
    c.average_swa_lr = 0.0  # > 0: the constant learning rate from average_swa_start on; 0: the run's schedule
    # another lottery run's workdir[:arm=,replicate=,prune_fraction=]: its level-L masks trained here;
    # several joined by & (their intersection) or | (their union): the composed masks
    c.mask_source = ""
    c.pretrain_data = selection.default_config()  # the examples the dense pretraining 0 -> k runs on
    c.pretrain_data.steps = ""  # its own length (epochs of the subset); "": the rewind step k
    return c


PRUNE_OF = ("remaining", "original")  # lottery.prune_of
PRETRAINED = "pretrained"  # lottery.rewind: to the pretrained weights (step 0 of a model.pretrained run)


def level_fractions(fractions_, level: int, prune_of: str):
    """The fraction of its *remaining* weights each network removes at ``level`` (>= 1): ``p`` itself,
    or with ``prune_of = "original"`` ``p / (1 - (level - 1) p)``, so that level L keeps ``1 - p L``
    of the original weights (up to the rounding of counts; the BERT-tickets schedule: 10% of the
    original weights per round, sparsities 10, 20, ..., 90%)."""
    if prune_of == "original":
        return fractions_ / (1.0 - (level - 1) * fractions_)
    return fractions_


def rewind_spec(rewind: str) -> str:
    """``lottery.rewind`` as a step spec: ``"pretrained"`` is step 0 (theta_0 = the pretrained weights)."""
    return "0it" if rewind == PRETRAINED else rewind


def fractions(config) -> tuple[float, ...]:
    """``lottery.prune_fraction`` as a tuple: one number, or the fractions of a sweep, each in (0, 1).

    Raises UserError for an empty sweep, a value outside (0, 1) or one listed twice.
    """
    value = config.lottery.prune_fraction
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"lottery.prune_fraction must be a number or a tuple of numbers, got {value!r}") from None
    if not values:
        raise UserError("lottery.prune_fraction is an empty tuple; give one fraction or several, e.g. (0.2, 0.4)")
    if any(not 0.0 < v < 1.0 for v in values):
        raise UserError(f"lottery.prune_fraction must be in (0, 1), got {value!r}")
    if len(set(values)) != len(values):
        raise UserError(f"lottery.prune_fraction lists a fraction twice: {value!r}")
    return values


def parse_overrides(text: str) -> dict[str, str]:
    """``"lr=0.05,optimizer=adam"`` -> ``{"lr": "0.05", "optimizer": "adam"}``."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise UserError(f"lottery.retrain_overrides item {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def check_rewind(config, rewind_step: int, total_steps: int) -> None:
    """The rewind step (in iterations) against the length of training."""
    if not 0 <= rewind_step < total_steps:
        raise UserError(
            f"lottery.rewind ({config.lottery.rewind} = {rewind_step} steps) must come before the end "
            f"of training ({config.train.steps} = {total_steps} steps)"
        )


def validate(config) -> None:
    """The lottery settings, checked without the data (the rewind step against the length of
    training too, when that does not depend on the epoch length)."""
    lot = config.lottery
    if not (isinstance(lot.levels, int) and lot.levels >= 0):
        raise UserError(f"lottery.levels must be a non-negative integer, got {lot.levels!r}")
    fractions(config)
    if lot.scope not in imp.SCOPES:
        raise UserError(f"unknown lottery.scope {lot.scope!r}; choose {', '.join(imp.SCOPES)}")
    if lot.retrain not in imp.RETRAIN_MODES:
        raise UserError(f"unknown lottery.retrain {lot.retrain!r}; choose one of {', '.join(imp.RETRAIN_MODES)}")
    branches(tuple(lot.branches))
    scorer = at_init.scorer(lot.scorer, "lottery.scorer")
    for field, least in (
        ("scorer_rounds", 0),
        ("scorer_examples_per_class", 0),
        ("average_copies", 1),
        ("average_bn_batches", 0),
    ):
        value = lot[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(f"lottery.{field} must be an integer >= {least}, got {value!r}")
    swa_start = lot.average_swa_start
    if (lot.average_copies > 1 or swa_start) and len(fractions(config)) > 1:
        raise UserError(
            "lottery.average_copies > 1 and lottery.average_swa_start need one lottery.prune_fraction, not a sweep"
        )
    if swa_start:
        step_specs.parse(swa_start, "lottery.average_swa_start")
        if step_specs.before(swa_start, config.train.steps, "lottery.average_swa_start", "train.steps") is False:
            raise UserError(
                f"lottery.average_swa_start ({swa_start}) must come before the end of training ({config.train.steps})"
            )
    swa_lr = lot.average_swa_lr
    if isinstance(swa_lr, bool) or not isinstance(swa_lr, (int, float)) or not swa_lr >= 0:
        raise UserError(f"lottery.average_swa_lr must be a number >= 0, got {swa_lr!r}")
    if scorer.needs_data and lot.scorer_examples_per_class == 0:
        raise UserError(
            f"lottery.scorer {scorer.name} scores on training examples, but "
            f"lottery.scorer_examples_per_class = 0 gives it none"
        )
    for key in parse_overrides(lot.retrain_overrides):
        if key not in config.train:
            raise UserError(
                f"lottery.retrain_overrides names train.{key}, which does not exist; "
                f"fields: {', '.join(sorted(config.train))}"
            )
    pretrain = lot.pretrain_data
    check_sweep(config)
    selection.check(pretrain, "lottery.pretrain_data")
    subsets.check_source(pretrain, fields.to_dict(config)["data"], "lottery.pretrain_data")
    if pretrain.steps:
        step_specs.parse(pretrain.steps, "lottery.pretrain_data.steps")
    if lot.get("prune_of", "remaining") not in PRUNE_OF:
        raise UserError(f"lottery.prune_of must be one of {', '.join(PRUNE_OF)}, got {lot.prune_of!r}")
    if lot.get("prune_of", "remaining") == "original" and max(fractions(config)) * lot.levels >= 1:
        raise UserError(
            f"lottery.prune_of = original removes {max(fractions(config)):g} of the original weights per level: "
            f"{lot.levels} levels would remove them all (give at most {int(round(1 / max(fractions(config)))) - 1})"
        )
    if lot.rewind == PRETRAINED and not config.model.get("pretrained", ""):
        raise UserError(
            "lottery.rewind = pretrained rewinds to the pretrained weights, but model.pretrained names none"
        )
    if step_specs.before(rewind_spec(lot.rewind), config.train.steps, "lottery.rewind", "train.steps") is False:
        raise UserError(f"lottery.rewind ({lot.rewind}) must come before the end of training ({config.train.steps})")
    if lot.get("mask_source", ""):
        if len(fractions(config)) > 1:
            raise UserError(
                "lottery.mask_source trains another run's masks: give one lottery.prune_fraction, not a sweep"
            )
        transfer.source(config)
    if streams(config.data):
        name = config.data.name
        if lot.average_copies != 1:
            raise UserError(f"lottery.average_copies > 1 needs the whole dataset in memory, and {name} is streamed")
        if pretrain.keep != "all":
            raise UserError(f"lottery.pretrain_data needs the whole dataset in memory, and {name} is streamed")


def check_sweep(config) -> None:
    """What a hyper-parameter sweep (``train.lr``, ... as tuples) cannot be combined with, one sentence each."""
    lot, swept = config.lottery, hyper.grid(config.train).fields
    if not swept:
        return
    alone = {
        "lottery.average_copies > 1": lot.average_copies > 1 or bool(lot.average_swa_start),
        "lottery.mask_source": bool(lot.get("mask_source", "")),
        "lottery.pretrain_data": lot.pretrain_data.keep != "all",
        "lottery.retrain = finetune": lot.retrain == "finetune",
    }
    for what, chosen in alone.items():
        if chosen:
            raise UserError(f"{what} trains one setting of train.{swept[0]}: sweep it in separate runs, not as a tuple")
    overridden = [k for k in parse_overrides(lot.retrain_overrides) if k in swept]
    if overridden:
        raise UserError(f"lottery.retrain_overrides sets train.{overridden[0]}, which this run sweeps")


def widths(config) -> tuple[int, int]:
    """A prune-fraction sweep trains its ``F`` fractions at once, SWAMP its particles."""
    return (max(len(fractions(config)), int(config.lottery.average_copies)),) * 2


def branches(names) -> list[branches_lib.Branch]:
    """The branches named in ``lottery.branches`` (in that order)."""
    out = []
    for name in names:
        if name not in branches_lib.BRANCHES:
            raise UserError(f"unknown lottery branch {name!r}; known branches: {', '.join(branches_lib.BRANCHES)}")
        out.append(branches_lib.BRANCHES[name])
    if len(set(names)) != len(names):
        raise UserError(f"lottery.branches lists a branch twice: {list(names)}")
    return out
