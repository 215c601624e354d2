"""``experiment = "scores"``: which training examples matter (Paul et al. 2021; Toneva et al. 2019).

``R`` replicates (each its own initialisation and data order) train densely in one vmapped program
from step 0. At every step of ``scores.at`` the EL2N and GraNd scores of every training example
are computed for every replicate (eval mode, unaugmented training data, one jitted call) and saved
as the artifact ``scores/step_SSSSSSS``; with ``forgetting`` in ``scores.kinds`` the training tracks
each example's forgetting events at every presentation (inside the compiled chunk) and runs to
``train.steps``, then saves ``scores/forgetting``. Without it, training stops at the last ``at`` step.

Load them with ``jaxlth.results.load(workdir).scores("el2n", step="20ep")`` (averaged over
replicates; ``replicates=True`` for ``(R, N)``); choose training subsets from them with
``data.subset`` or ``lottery.pretrain_data`` in another run. Rows: the training curve
(``arm=main``) and per replicate and step a summary of each score (``split=scores``,
``metric=<kind>_mean``). Artifacts: ``init`` and the scores. Figures: ``plots/score_histogram_<score>.png``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import steps as step_specs
from jaxlth import subsets
from jaxlth.analysis import example_scores
from jaxlth.errors import UserError
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.protocol import MAIN
from jaxlth.layout import FORGETTING, scores_name
from jaxlth.training import history as history_lib
from jaxlth.training.state import ExampleState, with_examples


def score_function(setup, kinds: tuple[str, ...], chunk: int):
    """``(params, batch_stats) -> {kind: (R, N)}`` for the step kinds, one jitted vmapped call."""
    program, data = setup.program, setup.data
    chosen = [k for k in kinds if k in subsets.STEP_KINDS]

    def one(params, batch_stats):
        out = {}
        if "el2n" in chosen:
            out["el2n"] = example_scores.el2n(
                program, params, batch_stats, data.train_images, data.train_labels, chunk=max(chunk, 1000)
            )
        if "grand" in chosen:
            out["grand"] = example_scores.grand(
                program, params, batch_stats, data.train_images, data.train_labels, chunk=chunk
            )
        return out

    return jax.jit(jax.vmap(one))


def run(ctx: Context) -> None:
    setup, sc = ctx.setup, ctx.config.scores
    kinds = tuple(sc.kinds)
    tracking = "forgetting" in kinds
    at = (
        step_specs.parse_list(sc.at, setup.steps_per_epoch, "scores.at")
        if any(k in subsets.STEP_KINDS for k in kinds)
        else []
    )
    if at and at[-1] > setup.total_steps:
        raise UserError(f"scores.at step {at[-1]} comes after the end of training ({setup.total_steps} steps)")
    end = setup.total_steps if tracking else at[-1]
    n, replicates = setup.dataset.num_train, ctx.config.replicates
    print(
        f"scores: {', '.join(kinds)} of {n} training examples x {replicates} replicate(s)"
        f"{' at steps ' + ', '.join(map(str, at)) if at else ''}; training to step {end}",
        flush=True,
    )

    plain = networks.start_state(ctx, networks.init_network(ctx), {})

    def initial_state() -> ExampleState:
        examples = jnp.tile(jnp.arange(n, dtype=jnp.int32), (replicates, 1))
        return setup.place(with_examples(plain(), examples, history_lib.empty(n, replicates) if tracking else None))

    labels = {"arm": MAIN, "level": 0}
    compute = score_function(setup, kinds, int(sc.chunk))
    for step in sorted(set(at) | {end}):
        # trained (or restored) only when an artifact of this step is missing; cached() also rewrites lost rows
        state = functools.cache(functools.partial(networks.state_at, ctx, step, initial_state, labels, "train"))
        ctx.cached(network_name(step), lambda: network_of(state()))  # the networks the scores are taken from
        if step in at:
            ctx.cached(
                scores_name(step),
                lambda: dict(
                    compute(state().params, state().batch_stats),
                    step=np.int64(step),
                    steps_per_epoch=np.int64(setup.steps_per_epoch),
                ),
                rows=summary_rows(ctx, step, kinds),
            )
        if tracking and step == end:
            ctx.cached(FORGETTING, lambda: state().history, rows=summary_rows(ctx, step, ("forgetting",)))


def network_name(step: int) -> str:
    """``8 -> "main/step_0000008/final"``: the replicates' networks trained to ``step`` (artifact)."""
    return f"{MAIN}/step_{int(step):07d}/final"


def summary_rows(ctx: Context, step: int, kinds: tuple[str, ...]):
    """``(labels, make_rows)``: per replicate, the mean of each score over the training examples
    (forgetting: the mean number of events of the examples ever learned, and the never-learned fraction)."""
    metrics = [f"{k}_mean" for k in kinds if k in subsets.STEP_KINDS] or ["forgetting_mean", "never_learned_fraction"]
    epoch = round(step / ctx.setup.steps_per_epoch, 4)

    def make(saved) -> list[dict]:
        values = {}
        if metrics[0] == "forgetting_mean":
            learned = np.asarray(saved["learned"])
            events = np.asarray(saved["forgetting_events"], np.float64)
            values["forgetting_mean"] = np.sum(events * learned, axis=1) / np.maximum(learned.sum(axis=1), 1)
            values["never_learned_fraction"] = 1.0 - learned.mean(axis=1)
        else:
            values = {f"{k}_mean": np.mean(np.asarray(saved[k]), axis=1) for k in kinds if k in subsets.STEP_KINDS}
        return [
            dict(
                arm=MAIN,
                level=0,
                replicate=r,
                density=1.0,
                step=step,
                epoch=epoch,
                split="scores",
                metric=metric,
                value=float(value),
            )
            for metric, per_replicate in values.items()
            for r, value in enumerate(per_replicate)
        ]

    return {"split": "scores", "step": step, "metric": metrics[0]}, make
