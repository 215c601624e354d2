"""What a ``train`` run trains: R replicates of the dense network, evaluated, checkpointed, resumable."""

from __future__ import annotations

import numpy as np

from jaxlth import sharding
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.protocol import MAIN


def run(ctx: Context) -> dict:
    """Trains (or resumes) the config; returns the final test metrics per replicate."""
    setup = ctx.setup
    init = networks.init_network(ctx)
    ctx.cached(f"{MAIN}/level_00/mask", lambda: setup.dense_mask(init["params"]))
    final = ctx.trained(
        f"{MAIN}/level_00",
        lambda: ctx.train(
            "", ctx.segment(0, setup.total_steps, "train"), {}, setup.init_state, {"arm": MAIN, "level": 0}
        ),
        checkpoints="",  # plain training keeps its checkpoints in checkpoints/<step>
    )
    loss, acc = sharding.to_host(setup.program.evaluate_data(final["params"], final["batch_stats"], setup.data, "test"))
    metrics = {"loss": loss, "accuracy": acc}
    grid = setup.grid
    for h, part in enumerate(np.split(acc, grid.size)):  # a hyper-parameter sweep: one line per setting
        print(
            f"{grid.label(h) + ': ' if grid.fields else ''}test accuracy after {setup.total_steps} steps: "
            f"{np.mean(part):.4f} ± {np.std(part):.4f} over {len(part)} replicate(s); "
            f"results in {ctx.layout.results_file}",
            flush=True,
        )
    return metrics
