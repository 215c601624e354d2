"""Linear mode connectivity: interpolation between networks, error barriers, BN recomputation.

``interpolate`` evaluates a whole grid of interpolation coefficients in one compiled call
(vmapped over alpha and over replicates); ``barrier_frankle`` and ``barrier_paul`` are the two
barrier definitions (docs/definitions.md); ``connectivity.path`` measures both along a path on
several splits; ``for_run`` binds them to a loaded workdir's model and data. This package uses
only public functions of ``jaxlth.training`` and never imports ``jaxlth.experiments``.
"""

from jaxlth.analysis import connectivity
from jaxlth.analysis.barriers import alpha_grid, barrier_frankle, barrier_paul
from jaxlth.analysis.interpolation import Analyzer, for_run, interpolate, recompute_batch_stats

__all__ = [
    "Analyzer",
    "alpha_grid",
    "connectivity",
    "barrier_frankle",
    "barrier_paul",
    "for_run",
    "interpolate",
    "recompute_batch_stats",
]
