"""The ``instability`` config block: its fields with their defaults, their checks (the source run's
config included, no data), and the networks it stacks per replicate."""

from __future__ import annotations

import ml_collections

from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments.instability.streams import ALIGN_RESTART
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.training import hyper

SPLITS = ("test", "train")
SPAWN_FROM = ("trunk", "source_rewind")


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.spawn_steps = "0it"  # comma-separated step specs k: copies trained from step k
    c.spawn_from = "trunk"  # trunk: this run's dense training at k | source_rewind: the source's rewind point
    c.copies = 2  # copies per spawn step, differing only in SGD noise
    c.alphas = 30  # evenly spaced interpolation coefficients in [0, 1]
    c.splits = ("test", "train")  # where errors along the path are measured
    c.train_examples = 10000  # train split: this many examples (fixed subset; 0 = all)
    c.bn_recompute_batches = 0  # > 0: recompute BatchNorm statistics at every alpha
    c.source_workdir = ""  # a lottery workdir: analyse its IMP subnetwork ...
    c.level = -1  # ... at this level (-1: the dense network)
    c.between_levels = False  # Paul et al. 2023: barrier between levels L and L+1
    c.matching_epsilon = -1.0  # matching: within eps of dense test error; < 0: 1 std
    c.perturb_scales = ()  # Paul et al. 2023: noise scales relative to layer norms
    c.perturb_step = "0it"  # the step whose network is perturbed (dense runs)
    c.align = ("none",)  # none | weights | activations, each optionally +repair: each path measured after each
    c.align_restarts = 1  # weight matching: from this many orders of the groups (the first: seed's), the best kept
    c.align_examples = 1024  # activation matching: this many unaugmented training examples (a fixed subset)
    c.repair_examples = 1024  # +repair (REPAIR, Jordan et al. 2023): unit statistics over this many examples
    c.seed_pairs = False  # also the dense networks of replicates r and r + 1 (different seeds), trained 0 -> T
    c.ticket_vs_reinit = False  # source's IMP level L against its random_reinit branch at level L
    c.init_to_final = False  # each network's start against its trained end: the dense trunk, the source's levels
    return c


def validate(config) -> None:
    """Every instability setting that can be checked without the data, the source run included."""
    from jaxlth.analysis import alignment  # the analyses (and SciPy) load when this experiment is chosen

    ins = config.instability
    spawn_steps = step_specs.parse_list(ins.spawn_steps, 1, "instability.spawn_steps")
    step_specs.parse(ins.perturb_step, "instability.perturb_step")
    for spec in [*filter(None, (s.strip() for s in str(ins.spawn_steps).split(","))), ins.perturb_step]:
        if step_specs.before(spec, config.train.steps, "instability step", "train.steps") is False:
            raise UserError(f"instability step {spec} must come before the end of training ({config.train.steps})")
    init_to_final = ins.get("init_to_final", False)
    if not isinstance(init_to_final, bool):
        raise UserError(f"instability.init_to_final must be true or false, got {init_to_final!r}")
    if not (
        spawn_steps
        or ins.between_levels
        or len(ins.perturb_scales)
        or ins.seed_pairs
        or ins.ticket_vs_reinit
        or init_to_final
    ):
        raise UserError(
            "the instability experiment has nothing to do: set instability.spawn_steps, "
            "instability.between_levels, instability.perturb_scales, instability.seed_pairs or "
            "instability.init_to_final"
        )
    if ins.copies < 2:
        raise UserError(f"instability.copies must be at least 2 (pairs of copies), got {ins.copies}")
    if not len(ins.splits):
        raise UserError("instability.splits must name at least one split: 'test' and/or 'train'")
    for split in ins.splits:
        if split not in SPLITS:
            raise UserError(f"instability.splits holds {split!r}; use 'test' and/or 'train'")
    if int(ins.alphas) < 2:
        raise UserError(f"instability.alphas must be at least 2 (both endpoints), got {ins.alphas}")
    if any(float(scale) <= 0 for scale in ins.perturb_scales):
        raise UserError(f"instability.perturb_scales must be positive, got {tuple(ins.perturb_scales)}")
    if ins.train_examples < 0 or ins.bn_recompute_batches < 0:
        raise UserError("instability.train_examples and instability.bn_recompute_batches must be >= 0")
    aligns = tuple(ins.align) if isinstance(ins.align, (tuple, list)) else (ins.align,)
    for mode in aligns:
        if mode not in alignment.ENTRIES:
            raise UserError(f"unknown instability.align entry {mode!r}; choose from {', '.join(alignment.ENTRIES)}")
    if not aligns or len(set(aligns)) != len(aligns):
        raise UserError(f"instability.align must list each alignment at most once, got {aligns}")
    restarts = ins.get("align_restarts", 1)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or not 1 <= restarts <= ALIGN_RESTART.span:
        raise UserError(
            f"instability.align_restarts must be an integer from 1 to {ALIGN_RESTART.span}, got {restarts!r}"
        )
    if ins.align_examples < 1 or ins.repair_examples < 1:
        raise UserError(
            f"instability.align_examples and instability.repair_examples must be at least 1, "
            f"got {ins.align_examples} and {ins.repair_examples}"
        )
    swept = hyper.grid(config.train).fields
    for what, chosen in (
        ("instability.seed_pairs", ins.seed_pairs),
        ("instability.source_workdir", ins.source_workdir),
    ):
        if swept and chosen:
            raise UserError(
                f"{what} analyses one setting of train.{swept[0]}: sweep it in separate runs, not as a tuple"
            )
    if ins.seed_pairs and config.replicates < 2:
        raise UserError("instability.seed_pairs needs at least 2 replicates (pairs of seeds r, r + 1)")
    if ins.spawn_from not in SPAWN_FROM:
        raise UserError(f"instability.spawn_from must be one of {', '.join(SPAWN_FROM)}, got {ins.spawn_from!r}")
    if not ins.source_workdir:
        if ins.spawn_from == "source_rewind":
            raise UserError("instability.spawn_from='source_rewind' needs instability.source_workdir (a lottery run)")
        if ins.between_levels or ins.level >= 0 or ins.ticket_vs_reinit:
            raise UserError(
                "instability.between_levels, instability.level and instability.ticket_vs_reinit need "
                "instability.source_workdir"
            )
        return
    source = lottery_source(ins.source_workdir, config, "instability.source_workdir")
    if ins.level >= 0 and ins.level not in source.levels():
        raise UserError(
            f"instability.level {ins.level} is not a finished level of {ins.source_workdir} "
            f"(finished: {source.levels()})"
        )


def widths(config) -> tuple[int, int]:
    """Spawned copies (or perturbation groups, the unperturbed one with them) train at once; every
    interpolation point of a path is evaluated at once."""
    ins = config.instability
    trained = max(int(ins.copies), len(ins.perturb_scales) + 1 if len(ins.perturb_scales) else 1)
    return trained, max(trained, int(ins.alphas))
