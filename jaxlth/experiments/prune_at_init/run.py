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

import functools

import jax

from jaxlth import rng
from jaxlth.errors import UserError
from jaxlth.experiments import networks, scoring
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.experiments.prune_at_init.block import NONE, REFERENCE_ARMS, names, sources
from jaxlth.layout import level_name
from jaxlth.pruning import at_init, branches, scorers
from jaxlth.training import copies as copies_lib


def arm(method: str, ablation: str) -> str:
    """The arm of ``method`` under ``ablation`` (``"snip"``, ``"snip_shuffle"``, ...)."""
    return method if ablation == NONE else f"{method}_{ablation}"


def copy_references(ctx: Context) -> list[float]:
    """Copies each source's IMP rows (final step of each level) into this run; returns their densities."""
    found = set()
    for workdir in sources(ctx.config):
        run = lottery_source(workdir, ctx.config, "prune_at_init.source_workdir")
        table = run.table
        rows = table[(table["experiment"] == "lottery") & (table["arm"] == IMP) & (table["split"] != "mask")]
        rows = rows[rows["step"] == rows.groupby("level")["step"].transform("max")]
        name = REFERENCE_ARMS[run.config["lottery"]["retrain"]]
        labels = {"arm": name}
        keep = ["level", "replicate", "density", "step", "epoch", "split", "metric", "value"]
        copied = [dict(labels, method=name, ablation=NONE, **{k: r[k] for k in keep}) for r in rows.to_dict("records")]
        ctx.replace_rows(labels, copied)
        found |= {round(float(d), 6) for d in rows[rows["level"] > 0]["density"]}
        print(f"reference: {name} from {workdir} ({len(copied)} rows)", flush=True)
    return sorted(found, reverse=True)


def run(ctx: Context) -> None:
    pai, setup, config = ctx.config.prune_at_init, ctx.setup, ctx.config
    k, total = ctx.steps(pai.at, "prune_at_init.at"), setup.total_steps
    if not 0 <= k < total:
        raise UserError(
            f"prune_at_init.at ({pai.at} = {k} steps) must come before the end of training "
            f"({config.train.steps} = {total} steps)"
        )
    reference_densities = copy_references(ctx)
    densities = [float(d) for d in names(pai.densities)] or [d for d in reference_densities if d < 1.0]
    methods = [at_init.METHODS[m] for m in names(pai.methods)]
    if any(scorers.SCORERS[m.scorer].needs_data for m in methods):
        scoring.check_examples(setup, pai.examples_per_class, "prune_at_init.examples_per_class")
    print(
        f"pruning at step {k}: {', '.join(m.name for m in methods)} to densities "
        f"{', '.join(f'{d:g}' for d in densities)}; ablations: {', '.join(names(pai.ablations)) or 'none'}",
        flush=True,
    )
    network = networks.rewind_network(ctx, k)
    dense_mask = setup.dense_mask(networks.init_network(ctx)["params"])
    data = []  # the scoring batches, made once when a method first needs them
    for method in methods:
        _run_method(ctx, method, network, dense_mask, densities, data, k, total)


def _run_method(
    ctx: Context,
    method: at_init.Method,
    network: dict,
    dense_mask,
    densities: list[float],
    data: list,
    k: int,
    total: int,
) -> None:
    pai, config, setup = ctx.config.prune_at_init, ctx.config, ctx.setup
    variants = [NONE] + ([] if method.is_random else list(names(pai.ablations)))
    levels = range(1, len(densities) + 1)
    finished = all(ctx.exists(f"{arm(method.name, v)}/{level_name(i)}/final") for v in variants for i in levels)
    if finished and not ctx.rows_lost(method.name):
        return
    count = len(densities)
    scored, ablated = {}, {}  # (R * D, ...) masks by invert; (mask, start) by shuffle / reinit

    def scored_masks(invert: bool):  # the method's masks, or those of its negated scores
        if invert not in scored:
            if not data:
                data.append(scoring.batches(setup, pai.examples_per_class))
            how = scoring.pruning(
                setup, method.scorer, method.scope or pai.scope, pai.rounds, invert, pai.batchnorm == "batch"
            )
            scored[invert] = _flat(
                scoring.masks_at_densities(
                    how, network, dense_mask, data[0], scoring.method_keys(config, method.name), densities
                )
            )
        return scored[invert]

    def ablation(variant: str):  # the lottery branch that is the same transform, per (replicate, density)
        if variant not in ablated:
            stream = rng.branch_stream(arm(method.name, variant), 0)
            keys = rng.copy_keys(rng.replicate_keys(config.seed, config.replicates, stream), count, 0)
            fresh = None
            if variant == "reinit":
                init = setup.program.init(
                    rng.replicate_keys(config.seed, config.replicates, stream + 1), setup.data_keys()
                )
                fresh = copies_lib.repeat(network_of(init), count)
            ablated[variant] = _ablate(
                keys, scored_masks(False), copies_lib.repeat(network, count), fresh, reinit=variant == "reinit"
            )
        return ablated[variant]

    def variant_masks(variant: str):
        return scored_masks(variant == "invert") if variant in (NONE, "invert") else ablation(variant)[0]

    stacked_masks, starts = [], []
    for variant in variants:
        name = arm(method.name, variant)
        stacked_masks += [
            ctx.cached(
                f"{name}/{level_name(i)}/mask",
                lambda v=variant, i=i: copies_lib.select(variant_masks(v), i - 1, count),
                rows=networks.mask_rows(
                    ctx, name, i, k, target_density=densities[i - 1], method=method.name, ablation=variant
                ),
            )
            for i in levels
        ]
        if variant == "reinit":  # a fresh initialisation on the mask; the others start from the network at k
            starts += [
                ctx.cached(
                    f"{name}/{level_name(i)}/start", lambda i=i: copies_lib.select(ablation("reinit")[1], i - 1, count)
                )
                for i in levels
            ]
        else:
            starts += [network] * count
    _train(ctx, method, variants, densities, stacked_masks, starts, k, total)


def _flat(tree):
    """``(R, D, ...) -> (R * D, ...)``: density ``d`` of replicate ``r`` at ``r * D + d``."""
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)


def _train(ctx: Context, method, variants, densities, masks: list, starts: list, k: int, total: int) -> None:
    """Trains every (replicate, variant, density) of ``method`` together; saves each as its level."""
    count = len(densities)
    artifacts = [f"{arm(method.name, v)}/{level_name(i + 1)}" for v in variants for i in range(count)]
    if all(ctx.exists(f"{n}/final") for n in artifacts) and not ctx.rows_lost(method.name):
        return
    mask = copies_lib.stack(masks)  # copy c = variant * D + density of replicate r at r * C + c
    network = copies_lib.stack(starts)
    layout = copies_lib.coordinates(len(variants), count)  # copy c of a replicate: (variant, density)
    coordinates = [
        {
            "replicate": r,
            "level": layout[c][1] + 1,
            "target_density": densities[layout[c][1]],
            "ablation": variants[layout[c][0]],
            "arm": arm(method.name, variants[layout[c][0]]),
        }
        for r, c in copies_lib.coordinates(ctx.config.replicates, len(artifacts))
    ]
    state = ctx.train(
        method.name,
        ctx.segment(k, total, f"{method.name}: {len(variants)} variants x {count} densities"),
        mask,
        networks.start_state(ctx, network, mask, copies=len(artifacts)),
        {"method": method.name},
        coordinates=coordinates,
    )
    for name, trained in zip(artifacts, copies_lib.split(network_of(state), len(artifacts))):
        ctx.save(f"{name}/final", trained)


@functools.partial(jax.jit, static_argnames="reinit")
def _ablate(keys, masks, networks, fresh, *, reinit: bool):
    """Each stacked mask's layerwise random shuffle and its network (``reinit``: the ``fresh`` networks
    re-drawn), one vmapped program per variant: the same for every method of a run."""
    transform = branches.random_reinit if reinit else branches.random_prune
    return jax.vmap(lambda k, m, n, f: transform(k, m, n, f, {"random_prune_scope": "layerwise"}))(
        keys, masks, networks, fresh
    )
