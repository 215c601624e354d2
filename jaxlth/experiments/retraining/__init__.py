"""``experiment = "retraining"``: what retraining is for in IMP (Paul et al. 2023: it finds new small weights).

Of a finished lottery run (``retraining.source_workdir``; level ``L`` has mask ``m_L`` and trained
network ``w_L``, and ``m_{L+1}`` removes the smallest ``|w_L|`` of ``m_L``), per level ``L >= 1``
and replicate:

* ``pruned_were_smallest_trained``: of the weights ``P = m_L \\ m_{L+1}`` that level ``L + 1``
  prunes (chosen by ``|w_L|``, after retraining), the fraction that were already among the ``|P|``
  smallest ``|w_{L-1}|`` in ``m_L`` (the next ones IMP would prune without retraining);
  ``pruned_were_smallest_rewind``: the same against the level's starting weights (rewind point on
  ``m_L``); ``chance``: ``|P| / |m_L|``, what a random choice gives;
* ``rank_correlation``: Spearman correlation of ``|w_{L-1}|`` and ``|w_L|`` over the weights of ``m_L``;
* the control "pruning without retraining" (arm ``no_retrain``): ``c_0`` dense, ``c_L`` = ``c_{L-1}``
  minus the source's prune fraction of its smallest ``|w_0|`` (the trained dense network, pruned
  again and again, never retrained; with global scope the same as one-shot pruning of ``w_0`` to
  each density), its Jaccard ``overlap_with_imp`` with ``m_L``, and its accuracy when trained from
  the rewind point like an IMP level (all levels x replicates in one vmapped program).

Rows: ``experiment=retraining``; ``arm=imp`` with ``split=mask`` for the IMP measurements;
``arm=no_retrain`` for the control (mask rows, training rows, ``overlap_with_imp``).
"""

from jaxlth.experiments.protocol import Experiment, lazy
from jaxlth.experiments.retraining import block
from jaxlth.experiments.retraining.arms import ARMS

EXPERIMENT = Experiment(
    name="retraining",
    summary="what retraining is for: new small weights, rank correlations, pruning without retraining",
    run=lazy("jaxlth.experiments.retraining.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("layer",),
    arms=ARMS,
    report=lazy("jaxlth.experiments.retraining.figures:report"),
    figures=lazy("jaxlth.experiments.retraining.figures"),
    order=5,
    widths=block.widths,
)
