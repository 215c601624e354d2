"""``experiment = "train"``: train R replicates of a dense network, evaluate, checkpoint, resume.

Workdir layout::

    config.json               the resolved config
    results.csv               tidy measurements (see jaxlth.results.COLUMNS)
    checkpoints/<step>/       Orbax training states (all replicates stacked), the latest few
    artifacts/init/                params and batch_stats at initialisation
    artifacts/main/level_00/mask/  the (all-True) mask over the prunable kernels
    artifacts/main/level_00/final/ params and batch_stats at the end of training
"""

from __future__ import annotations

import os

import numpy as np

from jaxlth import checkpoint, results
from jaxlth import workdir as workdir_lib
from jaxlth.experiments import setup as setup_lib
from jaxlth.training import loop


def run(config, workdir: str) -> dict:
    """Trains (or resumes) ``config`` in ``workdir``; returns the final test metrics per replicate."""
    workdir_lib.claim(workdir, config)
    setup = setup_lib.build(config)
    print(setup_lib.describe(setup), flush=True)

    init_dir = results.artifact_dir(workdir, "init")
    if not checkpoint.artifact_exists(init_dir):
        state0 = setup.init_state()
        checkpoint.save_artifact(init_dir, {"params": state0.params, "batch_stats": state0.batch_stats})
        checkpoint.save_artifact(results.artifact_dir(workdir, "main/level_00/mask"), setup.dense_mask(state0.params))
        del state0

    segment = loop.Segment(
        start=0,
        end=setup.total_steps,
        eval_every=setup.eval_every,
        checkpoint_every=setup.checkpoint_every,
        labels={"experiment": "train", "arm": "main", "level": 0},
        steps_per_epoch=setup.steps_per_epoch,
        eval_train=config.eval_train,
        progress=config.progress,
    )
    checkpoints = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    try:
        state = loop.run_segment(setup.program, setup.data, {}, segment, setup.init_state, checkpoints, workdir,
                                 place=setup.place)
    finally:
        checkpoints.close()
    checkpoint.save_artifact(results.artifact_dir(workdir, "main/level_00/final"),
                             {"params": state.params, "batch_stats": state.batch_stats})

    final = loop.evaluate(setup.program, state, setup.data, eval_train=False)["test"]
    acc = final["accuracy"]
    print(f"test accuracy after {setup.total_steps} steps: {np.mean(acc):.4f} ± {np.std(acc):.4f} "
          f"over {len(acc)} replicate(s); results in {os.path.join(workdir, results.RESULTS_FILE)}", flush=True)
    return final
