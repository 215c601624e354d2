"""``experiment = "prune_at_init"``: pruning before training, random pruning, and the ablations that
tell what their masks encode (Frankle, Dziugaite, Roy & Carbin 2021; Liu et al. 2022).

With ``at = k`` (default 0) and ``T`` training steps::

    network_k = init (k = 0) or the dense network trained 0 -> k         (artifact "rewind")
    method m, density d:  mask = prune(network_k, dense mask) by m to density d
        none:     train network_k on mask, k -> T                         (arm "m")
        shuffle:  each layer's mask permuted at random (per-layer density kept), network_k on it
        reinit:   the mask on a fresh initialisation                       (arm "m_reinit", ...)
        invert:   the mask of the negated scores (the most important weights pruned)
    every density x variant x replicate of a method trains in one vmapped program

Methods (:mod:`jaxlth.pruning.at_init`): ``random`` (global), ``magnitude``, ``snip``, ``grasp``,
``synflow`` (100 rounds, exponential schedule) with ``scope``; ``uniform`` and ``erk``: random
masks with those layer densities. Random methods take no ablations (each gives the same
distribution of networks). ``shuffle`` and ``reinit`` are the lottery branches ``random_prune``
(layerwise) and ``random_reinit``. ``source_workdir``: lottery runs of the same networks, data and
training whose IMP rows (final step of every level) are copied as arms ``imp`` / ``lr_rewind`` /
``finetune`` (their ``lottery.retrain``) for the figure; ``densities = ()`` takes theirs.
Density ``densities[i]`` is level ``i + 1`` of each arm; rows carry ``target_density``,
``method`` and ``ablation``.
"""

from __future__ import annotations

import ast

import jax
import ml_collections

from jaxlth import rng
from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments import networks, scoring, source
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.protocol import Experiment
from jaxlth.layout import level_name
from jaxlth.lottery import branches
from jaxlth.pruning import at_init, prune as prune_lib, scorers
from jaxlth.training import copies as copies_lib

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


def _names(value) -> tuple:
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
    return tuple(str(s).strip() for s in _names(value) if str(s).strip())


def validate(config) -> None:
    pai = config.prune_at_init
    methods = [at_init.method(m, "prune_at_init.methods entry") for m in _names(pai.methods)]
    if not methods:
        raise UserError("prune_at_init.methods is empty; name methods such as ('random', 'snip', 'synflow')")
    if len({m.name for m in methods}) != len(methods):
        raise UserError(f"prune_at_init.methods lists a method twice: {tuple(pai.methods)}")
    densities = [float(d) for d in _names(pai.densities)]
    if any(not 0.0 < d < 1.0 for d in densities):
        raise UserError(f"prune_at_init.densities must lie in (0, 1), got {tuple(densities)}")
    if len(set(densities)) != len(densities):
        raise UserError(f"prune_at_init.densities lists a density twice: {tuple(densities)}")
    if not densities and not sources(config):
        raise UserError("prune_at_init.densities is empty and no prune_at_init.source_workdir gives its levels")
    if pai.scope not in prune_lib.SCOPES:
        raise UserError(f"unknown prune_at_init.scope {pai.scope!r}; choose {', '.join(prune_lib.SCOPES)}")
    for a in _names(pai.ablations):
        if a not in ABLATIONS:
            raise UserError(f"unknown prune_at_init.ablations entry {a!r}; choose from {', '.join(ABLATIONS)}")
    if len(set(_names(pai.ablations))) != len(_names(pai.ablations)):
        raise UserError(f"prune_at_init.ablations lists an ablation twice: {tuple(pai.ablations)}")
    for field in ("rounds", "examples_per_class"):
        value = pai[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UserError(f"prune_at_init.{field} must be a non-negative integer, got {value!r}")
    needing = [m.name for m in methods if at_init.scorer(m.scorer, "scorer").needs_data]
    if needing and pai.examples_per_class == 0:
        raise UserError(f"prune_at_init.methods {', '.join(needing)} score on training examples, but "
                        f"prune_at_init.examples_per_class = 0 gives them none")
    if pai.batchnorm not in BATCHNORM:
        raise UserError(f"unknown prune_at_init.batchnorm {pai.batchnorm!r}; choose batch or running")
    if step_specs.before(pai.at, config.train.steps, "prune_at_init.at", "train.steps") is False:
        raise UserError(f"prune_at_init.at ({pai.at}) must come before the end of training ({config.train.steps})")
    modes = [source.lottery_source(w, config, "prune_at_init.source_workdir").config["lottery"]["retrain"]
             for w in sources(config)]
    if len(set(modes)) != len(modes):
        raise UserError(f"prune_at_init.source_workdir names two lottery runs with the same lottery.retrain {modes}")


def arm(method: str, ablation: str) -> str:
    """The arm of ``method`` under ``ablation`` (``"snip"``, ``"snip_shuffle"``, ...)."""
    return method if ablation == NONE else f"{method}_{ablation}"


def copy_references(ctx: Context) -> list[float]:
    """Copies each source's IMP rows (final step of each level) into this run; returns their densities."""
    found = set()
    for workdir in sources(ctx.config):
        run = source.lottery_source(workdir, ctx.config, "prune_at_init.source_workdir")
        table = run.table
        rows = table[(table["experiment"] == "lottery") & (table["arm"] == "imp") & (table["split"] != "mask")]
        rows = rows[rows["step"] == rows.groupby("level")["step"].transform("max")]
        name = REFERENCE_ARMS[run.config["lottery"]["retrain"]]
        labels = {"experiment": "prune_at_init", "arm": name}
        keep = ["level", "replicate", "density", "step", "epoch", "split", "metric", "value"]
        copied = [dict(labels, method=name, ablation=NONE, **{k: r[k] for k in keep})
                  for r in rows.to_dict("records")]
        ctx.replace_rows(labels, copied)
        found |= {round(float(d), 6) for d in rows[rows["level"] > 0]["density"]}
        print(f"reference: {name} from {workdir} ({len(copied)} rows)", flush=True)
    return sorted(found, reverse=True)


def run(ctx: Context) -> None:
    pai, setup, config = ctx.config.prune_at_init, ctx.setup, ctx.config
    k, total = ctx.steps(pai.at, "prune_at_init.at"), setup.total_steps
    if not 0 <= k < total:
        raise UserError(f"prune_at_init.at ({pai.at} = {k} steps) must come before the end of training "
                        f"({config.train.steps} = {total} steps)")
    reference_densities = copy_references(ctx)
    densities = [float(d) for d in _names(pai.densities)] or [d for d in reference_densities if d < 1.0]
    methods = [at_init.METHODS[m] for m in _names(pai.methods)]
    if any(scorers.SCORERS[m.scorer].needs_data for m in methods):
        scoring.check_examples(setup, pai.examples_per_class, "prune_at_init.examples_per_class")
    print(f"pruning at step {k}: {', '.join(m.name for m in methods)} to densities "
          f"{', '.join(f'{d:g}' for d in densities)}; ablations: {', '.join(_names(pai.ablations)) or 'none'}",
          flush=True)
    network = networks.rewind_network(ctx, k)
    dense_mask = setup.dense_mask(networks.init_network(ctx)["params"])
    data = []  # the scoring batches, made once when a method first needs them
    for method in methods:
        _run_method(ctx, method, network, dense_mask, densities, data, k, total)


def _run_method(ctx: Context, method: at_init.Method, network: dict, dense_mask, densities: list[float],
                data: list, k: int, total: int) -> None:
    pai, config, setup = ctx.config.prune_at_init, ctx.config, ctx.setup
    variants = [NONE] + ([] if method.is_random else list(_names(pai.ablations)))
    levels = range(1, len(densities) + 1)
    if all(ctx.exists(f"{arm(method.name, v)}/{level_name(i)}/final") for v in variants for i in levels):
        return
    count = len(densities)
    scored, ablated = {}, {}  # (R * D, ...) masks by invert; (mask, start) by shuffle / reinit

    def scored_masks(invert: bool):  # the method's masks, or those of its negated scores
        if invert not in scored:
            if not data:
                data.append(scoring.batches(setup, pai.examples_per_class))
            scored[invert] = _flat(scoring.masks_at_densities(
                setup, method, network, dense_mask, data[0], scoring.method_keys(config, method.name),
                densities, pai.scope, pai.rounds, invert, pai.batchnorm == "batch"))
        return scored[invert]

    def ablation(variant: str):  # the lottery branch that is the same transform, per (replicate, density)
        if variant not in ablated:
            stream = rng.branch_stream(arm(method.name, variant), 0)
            keys = rng.copy_keys(rng.replicate_keys(config.seed, config.replicates, stream), count, 0)
            fresh = None
            if variant == "reinit":
                init = setup.program.init(rng.replicate_keys(config.seed, config.replicates, stream + 1),
                                          setup.data_keys())
                fresh = copies_lib.repeat(network_of(init), count)
            transform = branches.random_reinit if variant == "reinit" else branches.random_prune
            options = {"random_prune_scope": "layerwise"}
            ablated[variant] = jax.jit(jax.vmap(lambda kk, m, n, f: transform(kk, m, n, f, options)))(
                keys, scored_masks(False), copies_lib.repeat(network, count), fresh)
        return ablated[variant]

    def variant_masks(variant: str):
        return scored_masks(variant == "invert") if variant in (NONE, "invert") else ablation(variant)[0]

    stacked_masks, starts = [], []
    for variant in variants:
        name = arm(method.name, variant)
        stacked_masks += [ctx.cached(f"{name}/{level_name(i)}/mask",
                                     lambda v=variant, i=i: copies_lib.select(variant_masks(v), i - 1, count),
                                     rows=networks.mask_rows(ctx, name, i, k, target_density=densities[i - 1],
                                                             method=method.name, ablation=variant))
                          for i in levels]
        if variant == "reinit":  # a fresh initialisation on the mask; the others start from the network at k
            starts += [ctx.cached(f"{name}/{level_name(i)}/start",
                                  lambda i=i: copies_lib.select(ablation("reinit")[1], i - 1, count)) for i in levels]
        else:
            starts += [network] * count
    _train(ctx, method, variants, densities, stacked_masks, starts, k, total)


def _flat(tree):
    """``(R, D, ...) -> (R * D, ...)``: density ``d`` of replicate ``r`` at ``r * D + d``."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)


def _train(ctx: Context, method, variants, densities, masks: list, starts: list, k: int, total: int) -> None:
    """Trains every (replicate, variant, density) of ``method`` together; saves each as its level."""
    count = len(densities)
    names = [f"{arm(method.name, v)}/{level_name(i + 1)}" for v in variants for i in range(count)]
    if all(ctx.exists(f"{n}/final") for n in names):
        return
    mask = copies_lib.stack(masks)  # copy c = variant * D + density of replicate r at r * C + c
    network = copies_lib.stack(starts)
    coords = [{"replicate": r, "level": c % count + 1, "target_density": densities[c % count],
               "ablation": variants[c // count], "arm": arm(method.name, variants[c // count])}
              for r, c in copies_lib.coordinates(ctx.config.replicates, len(names))]
    labels = {"experiment": "prune_at_init", "method": method.name}
    state = ctx.train(method.name, ctx.segment(k, total, f"{method.name}: {len(variants)} variants x {count} densities"),
                      mask, networks.start_state(ctx, network, mask, copies=len(names)), labels, coords=coords)
    for name, trained in zip(names, copies_lib.split(network_of(state), len(names))):
        ctx.save(f"{name}/final", trained)


def widths(config) -> tuple[int, int]:
    """A method trains its densities, times its ablations unless it is random, at once. Densities
    ``()`` are the sources' pruned levels (read from their ``config.json`` and level folders)."""
    pai = config.prune_at_init
    count = len(_names(pai.densities))
    if not count:
        found = set()
        for workdir in sources(config):
            run = source.lottery_source(workdir, config, "prune_at_init.source_workdir")
            found |= {round((1 - p) ** level, 6) for p in run.fractions for level in run.levels() if level > 0}
        count = len(found)
    ablated = any(not at_init.METHODS[m].is_random for m in _names(pai.methods) if m in at_init.METHODS)
    width = max(1, count) * (1 + len(_names(pai.ablations)) if ablated else 1)
    return width, width


def report(table, directory: str) -> tuple[str, list[str]]:
    from jaxlth import plots  # noqa: PLC0415 (matplotlib is slow to import)

    return plots.format_prune_at_init(table), plots.save_prune_at_init_figures(table, directory)


EXPERIMENT = Experiment(
    name="prune_at_init",
    summary="pruning at initialisation (SNIP, GraSP, SynFlow, magnitude, random, ERK) with its ablations",
    run=run,
    defaults=defaults,
    validate=validate,
    columns=("target_density", "method", "ablation", "layer"),
    may_change=("prune_at_init.methods", "prune_at_init.ablations", "prune_at_init.source_workdir"),
    reads=("lottery.layers_to_ignore",),
    report=report,
    order=8,
    widths=widths,
)
