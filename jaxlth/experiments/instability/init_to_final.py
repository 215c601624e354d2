"""From the initialisation to the solution (``init_to_final``): the path ``(1 - alpha) theta_0 +
alpha theta_T`` from where a network's training started to where it ended.

Goodfellow et al. (2015) drew the loss along this path; Frankle (2020, "Revisiting 'Qualitatively
characterizing neural network optimization problems'") found it roughly monotonically non-increasing
for modern networks but high until close to ``theta_T``; Vlaar & Frankle (ICML 2022, "What can linear
interpolation of neural network loss landscapes tell us?") ask what its shape says of the training.
Both take ``theta_0`` to be the initialisation. The paths measured:

* the dense network of this run (``pair = "trunk"``, level 0): ``theta_0`` the initialisation
  (artifact ``init``, ``run.network(which="init")``), ``theta_T`` the trunk trained ``0 -> T``
  (artifact ``init_to_final/level_00/final``, ``run.network(0, arm="init_to_final")``);
* with ``source_workdir``, every IMP level ``L`` the source finished (``pair = "imp"``, level ``L``):
  ``theta_0`` the network the level's training started from (the rewind weights on its mask, as the
  source saved them), ``theta_T`` its trained network; both read from the source, nothing retrained.

Each path is measured once, unaligned (``align = "none"``: both ends are one network's units), on
every split; BatchNorm statistics are recomputed at every alpha with ``bn_recompute_batches``. Rows
(arm ``init_to_final``): ``error`` and ``loss`` at every ``alpha``, and per path, split and replicate
the statistics of :func:`jaxlth.analysis.barriers.start_to_end_statistics` of both curves as
``metric = "<loss|error>_<rise|bump|monotonic|peak_alpha>"`` (no ``alpha``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.analysis import barriers, connectivity
from jaxlth.experiments.context import network_of
from jaxlth.experiments.instability.arms import INIT_TO_FINAL
from jaxlth.experiments.networks import init_network
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib

TRUNK_PAIR = "trunk"  # this run's dense network, from its initialisation
IMP_PAIR = "imp"  # an IMP level of the source run, from the level's starting network
CURVES = ("loss", "error")
STATISTICS = tuple(f"{curve}_{name}" for curve in CURVES for name in barriers.START_TO_END)
METRICS = (*CURVES, *STATISTICS)  # every metric this analysis writes


def run(scaffold) -> None:
    ctx, source = scaffold.ctx, scaffold.source
    levels = source.levels() if source is not None else []
    marker = f"{INIT_TO_FINAL}/measured_{len(levels)}"  # more finished source levels: measured again
    if ctx.done(marker):
        return
    start = init_network(ctx)
    end = ctx.cached(
        f"{INIT_TO_FINAL}/{level_name(0)}/final", lambda: network_of(scaffold.trunk_state(scaffold.total_steps))
    )
    paths = [({"pair": TRUNK_PAIR, "level": 0}, np.ones(scaffold.setup.stacked_replicates), start, end)]
    for level in levels:
        mask = jax.tree.map(jnp.asarray, source.mask(level))
        paths.append(
            (
                {"pair": IMP_PAIR, "level": level},
                np.asarray(mask_lib.density(mask, replicate_axis=True)),
                jax.tree.map(jnp.asarray, source.network(level, which="rewind")),
                jax.tree.map(jnp.asarray, source.network(level)),
            )
        )
    rows = [row for where, density, a, b in paths for row in path_rows(scaffold, where, density, a, b)]
    ctx.replace_rows({"arm": INIT_TO_FINAL}, rows, matching=lambda row: row.get("metric") in METRICS)
    ctx.mark_done(marker, {"arm": INIT_TO_FINAL})


def path_rows(scaffold, where: dict, density, start: dict, end: dict) -> list[dict]:
    """The rows of one start-to-end path (``where``: its ``pair`` and ``level``) on every split."""
    setup, alphas = scaffold.setup, scaffold.alphas
    steps = scaffold.total_steps
    base = dict(where, arm=INIT_TO_FINAL, spawn_step="", align="none", step=steps)
    base["epoch"] = round(steps / setup.steps_per_epoch, 4)
    measured = connectivity.path(setup.program, start, end, alphas, scaffold.eval_sets, scaffold.bn_batches)
    rows = []
    for split, found in measured.items():
        statistics = {c: barriers.start_to_end_statistics(alphas, found[c]) for c in CURVES}
        count = found["error"].shape[0]
        for r in range(count):
            (coordinates,) = setup.grid.at(r, count)  # replicate (and setting of a sweep)
            common = dict(base, **coordinates, density=float(density[r]), split=split)
            for i, alpha in enumerate(alphas):
                for curve in CURVES:
                    value = float(found[curve][r, i])
                    rows.append(dict(common, metric=curve, value=value, alpha=round(float(alpha), 6)))
            for curve in CURVES:
                for name, values in statistics[curve].items():
                    rows.append(dict(common, metric=f"{curve}_{name}", value=float(values[r])))
    return rows
