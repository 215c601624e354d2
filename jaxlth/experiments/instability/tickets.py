"""An IMP ticket against the random reinitialisation of its mask (``ticket_vs_reinit``).

At every level ``L`` the source lottery run finished for both arms, the trained IMP network and the
trained ``random_reinit`` branch (the same mask on a fresh initialisation) are interpolated, without
and with alignment: do two sparse networks of the same mask but different initialisations lie in
one mode once their units are matched? Rows: arm ``ticket_vs_reinit``, ``pair`` ``"imp-reinit"``,
at level ``L``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.experiments.instability.arms import TICKET_VS_REINIT
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.pruning import masks as mask_lib

REINIT = "random_reinit"


def run(scaffold) -> None:
    ctx, source = scaffold.ctx, scaffold.source
    levels = [level for level in source.levels(IMP) if level > 0 and level in source.levels(REINIT)]
    marker = scaffold.marker(f"{TICKET_VS_REINIT}/measured_{len(levels)}")
    if ctx.done(marker) or not levels:
        return
    for level in levels:
        ticket = jax.tree.map(jnp.asarray, source.network(level))
        reinit = jax.tree.map(jnp.asarray, source.network(level, arm=REINIT))
        density = np.asarray(mask_lib.density(jax.tree.map(jnp.asarray, source.mask(level)), replicate_axis=True))
        scaffold.record_paths(TICKET_VS_REINIT, level, density, "", [({"pair": "imp-reinit"}, ticket, reinit)])
    ctx.mark_done(marker, {"arm": TICKET_VS_REINIT})
