"""``experiment = "instability"``: linear mode connectivity (Frankle et al. 2020; Paul et al. 2023).

Three analyses over one shared scaffold (:mod:`.scaffold`), each run when configured:

* :mod:`.spawn` (``spawn_steps``, ``copies``): instability of copies spawned at step k;
* :mod:`.levels` (``between_levels``, needs ``source_workdir``): successive IMP levels;
* :mod:`.perturb` (``perturb_scales``): robustness of the rewind point to perturbation;
* :mod:`.seeds` (``seed_pairs``): the dense networks of different seeds (replicates r, r + 1);
* :mod:`.tickets` (``ticket_vs_reinit``): the source's IMP levels against their random reinitialisation;
* :mod:`.init_to_final` (``init_to_final``): each network's start against its trained end, the dense
  network of this run and every IMP level of the source (Frankle 2020; Vlaar & Frankle 2022).

The folder: ``block`` (the config block), ``run``, ``arms``, ``streams``, ``reader``
(``run.copies(...)``), ``barrier_tables``, ``figures`` and ``alignment_figures``.

Every path is measured once per entry of ``align`` (``none``, ``weights``, ``activations``: B's
hidden units permuted to A's first, :mod:`jaxlth.analysis.alignment`; each optionally ``+repair``:
every network on the path REPAIRed, :mod:`jaxlth.analysis.repair`); rows carry ``align``. Weight
matching runs from ``align_restarts`` orders of the groups (stream :data:`.streams.ALIGN_RESTART`)
and keeps the best objective.

Rows (``experiment=instability``): training rows of the trunk (``arm=trunk``), of the copies
(``arm=copies``, ``spawn_step=k``, ``replicate = r * copies + c``, see ``jaxlth.training.copies``)
and of the perturbed groups (``arm=perturb``, ``replicate = r * groups + g``); path rows
(``metric=error`` or ``loss`` with ``alpha``; ``barrier_frankle`` / ``barrier_paul``) with
``pair`` ``"i-j"`` (copies), ``"L-L+1"`` (levels) or ``noise_scale`` (perturbation);
``metric=matching_objective`` rows per path, replicate and aligned entry (the objective its
matching reached; ``split`` ``params`` for weights, ``train`` for activations); and
``metric=matching`` rows for successive levels; start-to-end paths (``arm=init_to_final``, ``pair``
``trunk`` or ``imp``) with their statistics (``metric=loss_rise``, ``error_monotonic``, ...). Figures
go to ``plots/``.
"""

from jaxlth.experiments.instability import block, streams
from jaxlth.experiments.instability.arms import ARMS
from jaxlth.experiments.protocol import Experiment, lazy

EXPERIMENT = Experiment(
    name="instability",
    summary="linear mode connectivity: copies spawned at step k, successive IMP levels, perturbation",
    run=lazy("jaxlth.experiments.instability.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("spawn_step", "pair", "alpha", "noise_scale", "align"),
    arms=ARMS,
    streams=streams.STREAMS,
    sweeps=True,
    may_change=(
        "instability.spawn_steps",
        "instability.align",
        "instability.align_restarts",
        "instability.seed_pairs",
        "instability.ticket_vs_reinit",
        "instability.init_to_final",
    ),
    reader=lazy("jaxlth.experiments.instability.reader:InstabilityRun"),
    report=lazy("jaxlth.experiments.instability.figures:report"),
    figures=lazy("jaxlth.experiments.instability.figures"),
    order=2,
    widths=block.widths,
)
