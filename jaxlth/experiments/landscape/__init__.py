"""``experiment = "landscape"``: the curvature that limits how much one IMP level can prune.

Paul et al. (2023, Sec. 3.3): the flatness of the error landscape at the end of training limits
the fraction of weights one IMP level can prune. For every finished level ``L`` of a lottery run
(``landscape.source_workdir``) and every replicate (and prune fraction, when the source sweeps
them), at the level's trained network ``w`` on mask ``m``:

* the top-``k`` Hessian eigenvalues (Lanczos) and the trace (Hutchinson) of the training loss on a
  fixed, seeded subset of ``landscape.examples`` training examples, restricted to the subspace the
  mask keeps (``M H M``, ``landscape.subspace = "mask"``) or not;
* for each ``p`` in ``landscape.projection_fractions``: the projection ``m' * w`` onto the mask that
  prunes a further fraction ``p`` of ``m``'s weights by magnitude, loss and error along the segment
  ``w -> m' * w`` (``landscape.alphas`` points, on the subset and the test set), and the Taylor
  prediction ``g.delta + 1/2 delta' H delta`` of the loss change next to the measured one.

Everything of one level (all networks, all fractions) is one compiled, vmapped call; a level's rows
are written once, with a marker, so a rerun skips measured levels and a killed run resumes at the
first unmeasured one. Rows: ``experiment=landscape, arm=imp``; ``split=train`` (the subset) or
``test``; ``rank`` for eigenvalues, ``projection`` and ``alpha`` for paths. When the source sweeps
prune fractions, its per-level matching is copied (``metric=matching``) for the figure of the
largest prune fraction against curvature. With ``landscape.diagonal_probes > 0``, Hutchinson's estimate
of the Hessian's diagonal and its distribution per layer (``layer``) and over the kept weights
(:mod:`.diagonal`: ``metric=diagonal_*``, ``quantile``), and its histogram.
"""

from jaxlth.experiments.landscape import block, streams
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.experiments.protocol import Arms, Experiment, lazy

EXPERIMENT = Experiment(
    name="landscape",
    summary="Hessian spectra of IMP's trained networks, and how far each level's projection can prune",
    run=lazy("jaxlth.experiments.landscape.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("prune_fraction", "projection", "alpha", "rank", "layer", "quantile"),
    arms=Arms({IMP: "IMP"}, main=IMP),
    streams=streams.STREAMS,
    may_change=("landscape.diagonal_probes",),
    report=lazy("jaxlth.experiments.landscape.figures:report"),
    figures=lazy("jaxlth.experiments.landscape.figures"),
    order=4,
    widths=block.widths,
)
