"""Every network an experiment trains and measures loads through ``jaxlth.results``: the networks a
scores run took its scores from, the dense networks an instability run's seed pairs interpolate, and
the initialisation of every run that trains from one."""

import jax
import numpy as np
import pytest

from jaxlth import experiments, results
from jaxlth.analysis import for_run
from jaxlth.errors import UserError
from jaxlth.experiments.scores.run import score_function
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config


def test_a_scores_run_keeps_the_networks_its_scores_were_taken_from(tmp_path):
    config = tiny_config("scores", replicates=2)
    experiments.run(config, str(tmp_path / "scores"))
    run = results.load(str(tmp_path / "scores"))
    assert run.network_steps() == [0, 8, 16]  # the scoring steps and the end (forgetting is tracked to it)
    compute = score_function(setup_lib.build(config), ("el2n", "grand"), 16)
    for step in run.score_steps():
        network = jax.tree.map(np.asarray, run.network_at(step))
        again = jax.tree.map(np.asarray, compute(network["params"], network["batch_stats"]))
        for kind in ("el2n", "grand"):
            np.testing.assert_array_equal(again[kind], run.scores(kind, step=step, replicates=True))
    one = run.network_at("1ep", replicate=1)
    np.testing.assert_array_equal(
        one["params"]["hidden_0"]["kernel"], run.network_at(8)["params"]["hidden_0"]["kernel"][1]
    )
    with pytest.raises(UserError, match="no networks saved at step 5"):
        run.network_at(5)


def test_an_instability_run_keeps_its_initialisation_and_its_seed_pairs_networks(tmp_path):
    config = tiny_config("instability", replicates=2, **{"instability.spawn_steps": "", "instability.seed_pairs": True})
    experiments.run(config, str(tmp_path / "seeds"))
    run = results.load(str(tmp_path / "seeds"))
    init = run.params(which="init")
    assert init["hidden_0"]["kernel"].shape == (2, 784, 32)
    pair = run.network(level=0, arm="seeds")  # replicate r's dense network at T; the pair (0, 1) is measured
    curve = for_run(run).interpolate(
        jax.tree.map(lambda x: x[:1], pair),
        jax.tree.map(lambda x: x[1:], pair),
        alphas=int(config.instability.alphas),
        split="test",
    )
    table = run.table
    measured = table[(table.arm == "seeds") & (table.split == "test") & (table.metric == "error")].sort_values("alpha")
    np.testing.assert_allclose(curve["error"][0], measured.value.to_numpy(), atol=1e-6)
