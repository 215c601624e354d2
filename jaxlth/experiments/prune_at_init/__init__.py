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

from jaxlth.experiments.protocol import Experiment, lazy
from jaxlth.experiments.prune_at_init import block
from jaxlth.experiments.prune_at_init.arms import ARMS
from jaxlth.experiments.scoring import SCORING_EXAMPLES

EXPERIMENT = Experiment(
    name="prune_at_init",
    summary="pruning at initialisation (SNIP, GraSP, SynFlow, magnitude, random, ERK) with its ablations",
    run=lazy("jaxlth.experiments.prune_at_init.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("target_density", "method", "ablation", "layer"),
    arms=ARMS,
    streams=(SCORING_EXAMPLES,),
    may_change=("prune_at_init.methods", "prune_at_init.ablations", "prune_at_init.source_workdir"),
    report=lazy("jaxlth.experiments.prune_at_init.figures:report"),
    figures=lazy("jaxlth.experiments.prune_at_init.figures"),
    order=8,
    widths=block.widths,
)
