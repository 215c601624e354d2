"""Networks of different seeds (``seed_pairs``): replicates ``r`` and ``r + 1`` trained densely from
their own initialisations and data orders, ``0 -> T``, interpolated.

Without alignment their barrier is large; after permuting one's hidden units to the other's
(``instability.align``) it mostly disappears (Entezari et al. 2022; Ainsworth et al. 2023). The
dense trunk trained to ``T`` is the trunk of the spawn analysis, kept as a full state; its networks are
the artifact ``seeds/level_00/final`` (``run.network(arm="seeds")``: replicate ``r`` at ``r``). Rows: arm
``seeds``, ``pair`` ``"r-(r+1)"``, ``replicate = r``.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxlth.experiments.context import network_of
from jaxlth.experiments.instability.arms import SEEDS
from jaxlth.layout import level_name

MEASURED = f"{SEEDS}/measured"


def run(scaffold) -> None:
    ctx, replicates = scaffold.ctx, scaffold.config.replicates
    if ctx.done(scaffold.marker(MEASURED)):
        return
    network = ctx.cached(
        f"{SEEDS}/{level_name(0)}/final", lambda: network_of(scaffold.trunk_state(scaffold.total_steps))
    )
    first = jax.tree.map(lambda x: x[:-1], network)
    second = jax.tree.map(lambda x: x[1:], network)
    density = np.ones(replicates)
    pairs = [({"pair": "r-(r+1)"}, first, second)]
    scaffold.record_paths(SEEDS, 0, density, "", pairs)
    ctx.mark_done(scaffold.marker(MEASURED), {"arm": SEEDS})
