"""The retraining experiment: which weights retraining makes small, and pruning without retraining."""

import jax
import numpy as np
import pytest

from jaxlth import experiments, plots, results
from jaxlth.errors import UserError
from jaxlth.experiments.retraining.run import level_measures
from jaxlth.pruning import masks as mask_lib
from tests.conftest import tiny_config

SOURCE = {"replicates": 2, "lottery.levels": 3, "lottery.branches": ()}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    base = tmp_path_factory.mktemp("retraining")
    experiments.run(tiny_config("lottery", **SOURCE), str(base / "source"))
    experiments.run(
        tiny_config("retraining", replicates=2, **{"retraining.source_workdir": str(base / "source")}),
        str(base / "analysis"),
    )
    return results.load(str(base / "source")), results.load(str(base / "analysis"))


def test_level_measures_on_a_small_example():
    mask = {"a": {"kernel": np.array([[True, True, True, True, False]])}}
    next_mask = {"a": {"kernel": np.array([[False, True, True, False, False]])}}  # prunes positions 0 and 3
    before = {"a": {"kernel": np.array([[0.1, 0.5, 0.9, 0.2, 0.0]])}}  # smallest kept two: 0 and 3
    start = {"a": {"kernel": np.array([[0.1, 0.05, 0.9, 0.7, 0.0]])}}  # smallest kept two: 1 and 0
    after = {"a": {"kernel": np.array([[0.2, 0.6, 1.0, 0.1, 0.0]])}}
    out = level_measures(mask, next_mask, before, after, start)
    assert out["pruned_were_smallest_trained"] == 1.0
    assert out["pruned_were_smallest_rewind"] == 0.5
    assert out["chance"] == 0.5
    assert out["rank_correlation"] == pytest.approx(0.8)  # ranks (1,3,4,2) vs (2,3,4,1)


def test_the_control_prunes_the_dense_network_again_and_again(analysed):
    source, run = analysed
    total = 784 * 32 + 32 * 16
    for level in (1, 2, 3):
        control = run.mask(level, arm="no_retrain")
        for r in range(2):
            density = float(mask_lib.density(jax.tree.map(lambda m: m[r], control)))
            assert abs(density - 0.8**level) <= level / total + 1e-6
    # level 1 of both prunes the trained dense network once: the same mask, so the same trained network
    for a, b in zip(jax.tree.leaves(run.mask(1, arm="no_retrain")), jax.tree.leaves(source.mask(1))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(run.params(1, arm="no_retrain")), jax.tree.leaves(source.params(1))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    overlap = run.table[(run.table.metric == "overlap_with_imp")].astype({"level": int, "value": float})
    assert (overlap[overlap.level == 1]["value"] == 1.0).all()
    assert (overlap[overlap.level == 3]["value"] < 1.0).all()


def test_measures_are_recorded_per_level_and_replicate(analysed):
    _, run = analysed
    table = run.table
    rows = table[table.metric == "pruned_were_smallest_trained"].astype({"level": int, "value": float})
    assert sorted(set(rows.level)) == [1, 2] and len(rows) == 4
    assert ((rows["value"] >= 0) & (rows["value"] <= 1)).all()
    chance = table[table.metric == "chance"].astype({"value": float})["value"]
    np.testing.assert_allclose(chance, 0.2, atol=1e-3)  # |P| / |m_L| = the prune fraction
    text = plots.format_retraining(table)
    assert "rank corr" in text and "no-retrain" in text
    frame = plots.retraining_table(table)
    assert not np.isnan(frame.loc[frame.level == 2, "no_retrain_accuracy"]).any()


def test_bad_sources_are_one_sentence(analysed, tmp_path):
    source, _ = analysed
    with pytest.raises(UserError, match="source_workdir is required"):
        experiments.run(tiny_config("retraining"), str(tmp_path / "a"))
    short = str(tmp_path / "short")
    experiments.run(tiny_config("lottery", **{**SOURCE, "lottery.levels": 0}), short)
    with pytest.raises(UserError, match="needs at least 2"):
        experiments.run(
            tiny_config("retraining", replicates=2, **{"retraining.source_workdir": short}), str(tmp_path / "b")
        )
    with pytest.raises(UserError, match="replicates must equal"):
        experiments.run(tiny_config("retraining", **{"retraining.source_workdir": source.workdir}), str(tmp_path / "c"))
    assert not any((tmp_path / name).exists() for name in "abc")
