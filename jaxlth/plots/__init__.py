"""The figures and tables researchers expect from a run, from its tidy results table.

Every function takes the DataFrame of ``results.csv`` (``jaxlth.results.load(workdir).table``),
so the same code serves the command line and a notebook::

    run = jaxlth.results.load("runs/lenet_lottery")
    print(jaxlth.plots.format_summary(run.table))
    jaxlth.plots.accuracy_vs_weights(run.table)

The generic per-(arm, level) tables (:func:`final_metrics`, :func:`summary`, :func:`format_summary`)
serve every experiment; the figures of the lottery experiment (:func:`accuracy_vs_weights`,
:func:`layer_density`, :func:`save_figures`), of the instability experiment (:func:`barriers`,
:func:`format_barriers`, :func:`save_instability_figures`, ...) and of the one-shot experiment
(:func:`format_one_shot`, :func:`save_one_shot_figures`) and of a prune-fraction sweep
(:func:`prune_sweep_table`, :func:`largest_matching_fraction`, :func:`save_sweep_figures`) and of the
landscape experiment (:func:`curvature_table`, :func:`format_landscape`, :func:`save_landscape_figures`) and
of the retraining experiment (:func:`retraining_table`, :func:`format_retraining`) and of per-example
scores (:func:`score_table`, :func:`format_scores`, :func:`save_score_figures`, from a loaded run) and
of the data diet (:func:`data_diet_table`, :func:`format_data_diet`, :func:`data_diet_curve`) and of pruning
at initialisation (:func:`prune_at_init_table`, :func:`format_prune_at_init`, :func:`accuracy_vs_density`) and of several
runs side by side (:func:`format_comparison`, :func:`save_comparison_figures`) live in submodules and are all importable
from here. Arm names and legend labels come from :mod:`jaxlth.arms`.

Units: ``density`` columns are fractions of the prunable weights kept (1.0 = dense);
``percent_remaining`` and the axes show percentages; accuracies are fractions in the table and
percentages on axes and in :func:`format_summary`. Standard deviations are over replicates
(sample std, ``ddof=1``; NaN in :func:`summary` for a single replicate).

Functions given ``ax=None`` draw on a new pyplot figure (inline in a notebook; matplotlib falls
back to the Agg backend without a display). The ``save_*`` functions never touch pyplot: they draw
on free-standing :class:`matplotlib.figure.Figure` objects, so they leak no figures and need no
display.
"""

from jaxlth.arms import LABELS as ARM_LABELS  # legend labels by arm name, for notebooks written before jaxlth.arms
from jaxlth.plots.common import final_metrics, format_summary, summary
from jaxlth.plots.instability import (BARRIER_FIGURE, BARRIERS, CURVES_FIGURE, LEVELS_FIGURE, PERTURB_FIGURE,
                                      barrier_between_levels, barrier_vs_perturbation, barrier_vs_spawn_step,
                                      barriers, format_barriers, interpolation_curves, save_instability_figures)
from jaxlth.plots.alignment import ALIGNMENT_FIGURE, alignment_table, barrier_alignment, format_alignment
from jaxlth.plots.lottery import (ACCURACY_FIGURE, LAYER_DENSITY_FIGURE, accuracy_vs_weights, layer_density,
                                  save_figures)
from jaxlth.plots.one_shot import ONE_SHOT_FIGURE, format_one_shot, save_one_shot_figures
from jaxlth.plots.landscape import (EIGENVALUE_FIGURE, FRACTION_FIGURE, PREDICTION_FIGURE, PROJECTION_FIGURE,
                                    curvature_table, curvature_vs_fraction, format_landscape, lambda_max_vs_sparsity,
                                    predicted_vs_measured, projection_error, projection_table,
                                    save_landscape_figures)
from jaxlth.plots.retraining import (NO_RETRAIN_FIGURE, SMALL_WEIGHTS_FIGURE, format_retraining, retraining_table,
                                     save_retraining_figures, small_weights)
from jaxlth.plots.scores import (SCORE_FIGURE, format_scores, replicate_agreement, save_score_figures, score_histogram,
                                 score_table)
from jaxlth.plots.data_diet import (DATA_DIET_FIGURE, data_diet_curve, data_diet_table, diet_final, format_data_diet,
                                    save_data_diet_figures)
from jaxlth.plots.compare import (BARRIER_COMPARE_FIGURE, COMPARE_FIGURE, accuracy_comparison, barrier_comparison,
                                  comparison_table, format_comparison, rewind_barrier_table, save_comparison_figures)
from jaxlth.plots.prune_at_init import (ABLATIONS_FIGURE, PRUNE_AT_INIT_FIGURE, accuracy_vs_density,
                                        format_prune_at_init, prune_at_init_table, save_prune_at_init_figures)
from jaxlth.plots.prune_sweep import (MATCHING_FIGURE, SWEEP_FIGURE, format_prune_sweep, largest_matching_fraction,
                                      matching_grid, prune_sweep_table, save_sweep_figures, sweep_accuracy)

__all__ = [
    "ARM_LABELS", "final_metrics", "summary", "format_summary",
    "ACCURACY_FIGURE", "LAYER_DENSITY_FIGURE", "accuracy_vs_weights", "layer_density", "save_figures",
    "BARRIER_FIGURE", "CURVES_FIGURE", "LEVELS_FIGURE", "PERTURB_FIGURE", "BARRIERS", "barriers",
    "format_barriers", "barrier_vs_spawn_step", "interpolation_curves", "barrier_between_levels",
    "barrier_vs_perturbation", "save_instability_figures",
    "ONE_SHOT_FIGURE", "format_one_shot", "save_one_shot_figures",
    "SWEEP_FIGURE", "MATCHING_FIGURE", "prune_sweep_table", "largest_matching_fraction", "format_prune_sweep",
    "sweep_accuracy", "matching_grid", "save_sweep_figures",
    "EIGENVALUE_FIGURE", "PROJECTION_FIGURE", "PREDICTION_FIGURE", "FRACTION_FIGURE", "curvature_table",
    "projection_table", "format_landscape", "lambda_max_vs_sparsity", "projection_error", "predicted_vs_measured",
    "curvature_vs_fraction", "save_landscape_figures",
    "SMALL_WEIGHTS_FIGURE", "NO_RETRAIN_FIGURE", "retraining_table", "format_retraining", "small_weights",
    "save_retraining_figures",
    "COMPARE_FIGURE", "BARRIER_COMPARE_FIGURE", "comparison_table", "rewind_barrier_table", "format_comparison",
    "accuracy_comparison", "barrier_comparison", "save_comparison_figures",
    "DATA_DIET_FIGURE", "diet_final", "data_diet_table", "format_data_diet", "data_diet_curve",
    "save_data_diet_figures",
    "SCORE_FIGURE", "score_table", "format_scores", "score_histogram", "replicate_agreement", "save_score_figures",
    "ALIGNMENT_FIGURE", "alignment_table", "format_alignment", "barrier_alignment",
    "PRUNE_AT_INIT_FIGURE", "ABLATIONS_FIGURE", "prune_at_init_table", "format_prune_at_init", "accuracy_vs_density",
    "save_prune_at_init_figures",
]
