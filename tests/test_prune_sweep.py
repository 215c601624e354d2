"""A prune-fraction sweep: F level sequences in one vmapped program, equal to F separate runs."""

import math
import os

import jax
import numpy as np
import pytest

from jaxlth import experiments, plots, results
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.pruning import masks as mask_lib
from tests.conftest import assert_same_rows, checkpoint_steps, record_trainings, run_cli, start_and_kill, tiny_config

FRACTIONS = (0.3, 0.6)
FRACTIONS_CLI = (0.3, 0.6)
SETTINGS = {"replicates": 2, "lottery.branches": ("random_prune",), "lottery.levels": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sweep over FRACTIONS, and one ordinary lottery run per fraction, same settings."""
    base = tmp_path_factory.mktemp("sweep")
    mp = pytest.MonkeyPatch()
    trainings = record_trainings(mp)
    try:
        experiments.run(
            tiny_config("lottery", **SETTINGS, **{"lottery.prune_fraction": FRACTIONS}), str(base / "sweep")
        )
    finally:
        mp.undo()
    for p in FRACTIONS:
        experiments.run(tiny_config("lottery", **SETTINGS, **{"lottery.prune_fraction": p}), str(base / f"p{p}"))
    return (results.load(str(base / "sweep")), {p: results.load(str(base / f"p{p}")) for p in FRACTIONS}, trainings)


def test_every_level_trains_all_fractions_in_one_program(runs):
    _, _, trainings = runs
    by_name = {t["name"]: t for t in trainings}
    assert "imp/level_00" in by_name and "imp/level_02" in by_name
    dense = jax.tree.leaves(by_name["imp/level_00"]["state"].params)[0]
    pruned = jax.tree.leaves(by_name["imp/level_01"]["state"].params)[0]
    assert dense.shape[0] == 2  # the dense level is trained once per replicate
    assert pruned.shape[0] == 2 * len(FRACTIONS)  # R x F networks on the leading axis
    assert jax.tree.leaves(by_name["random_prune/level_02"]["state"].params)[0].shape[0] == 4
    widest = max(jax.tree.leaves(t["state"].params)[0].shape[0] for t in trainings)
    config = tiny_config("lottery", **SETTINGS, **{"lottery.prune_fraction": FRACTIONS})
    assert widest == SETTINGS["replicates"] * registry.get("lottery").widths(config)[0]  # what replicates.choose counts


def test_a_sweep_equals_separate_runs(runs):
    sweep, single, _ = runs
    for p, run in single.items():
        for level in (0, 1, 2):
            for a, b in zip(jax.tree.leaves(sweep.mask(level, prune_fraction=p)), jax.tree.leaves(run.mask(level))):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(jax.tree.leaves(sweep.params(level, prune_fraction=p)), jax.tree.leaves(run.params(level))):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        a = jax.tree.leaves(sweep.params(2, arm="random_prune", prune_fraction=p, replicate=1))
        b = jax.tree.leaves(run.params(2, arm="random_prune", replicate=1))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        rows = sweep.table[sweep.table["prune_fraction"] == p]
        keys = ["arm", "level", "replicate", "step", "split", "metric"]
        mine = rows[rows["split"].isin(["test", "train"])].set_index(keys)["value"].sort_index()
        theirs = run.table[run.table["split"].isin(["test", "train"])].set_index(keys)["value"].sort_index()
        theirs = theirs[theirs.index.get_level_values("arm") != "pretrain"]
        assert list(mine.index) == list(theirs.index)
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-5)


def test_densities_are_powers_of_the_kept_fraction(runs):
    sweep, _, _ = runs
    total = 784 * 32 + 32 * 16  # the prunable kernels (the output layer is ignored)
    for p in FRACTIONS:
        for level in (1, 2):
            for r in range(2):
                density = float(mask_lib.density(sweep.mask(level, replicate=r, prune_fraction=p)))
                assert abs(density - (1 - p) ** level) <= level / total + 1e-6  # ceil(): one weight a level
    stacked = sweep.mask(2)
    assert jax.tree.leaves(stacked)[0].shape[0] == 4
    assert math.isclose(float(mask_lib.density(jax.tree.map(lambda m: m[3], stacked))), 0.4**2, abs_tol=1e-3)


def test_sweep_table_says_which_levels_stay_matching(runs):
    sweep, _, _ = runs
    table = plots.prune_sweep_table(sweep.table, epsilon=1.0)  # everything matches within 100 points
    assert set(table["prune_fraction"]) == set(FRACTIONS)
    assert table["matching"].all()
    largest = plots.largest_matching_fraction(sweep.table, epsilon=1.0)
    assert list(largest["largest_matching_fraction"]) == [max(FRACTIONS)] * 3
    none = plots.largest_matching_fraction(sweep.table, epsilon=0.0)
    level_0 = none[none["level"] == 0]["largest_matching_fraction"].iloc[0]
    assert level_0 == max(FRACTIONS)  # the dense level matches itself
    text = plots.format_prune_sweep(sweep.table)
    assert "0.3" in text and "0.6" in text


@pytest.mark.parametrize(
    "value, fragment", [((0.2, 1.5), "(0, 1)"), ((), "empty"), ((0.2, 0.2), "twice"), ("a", "number")]
)
def test_bad_fractions_are_one_sentence(value, fragment, tmp_path):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        experiments.run(tiny_config("lottery", **{"lottery.prune_fraction": value}), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_the_command_line_takes_a_tuple_of_fractions(tmp_path):
    workdir = str(tmp_path / "w")
    proc = run_cli(
        "--config",
        "tests/configs/tiny.py:lottery",
        "--config.lottery.prune_fraction=0.2,0.5",
        "--config.lottery.levels=1",
        "--config.lottery.branches=()",
        "--workdir",
        workdir,
        check=True,
    )
    assert "largest matching p" in proc.stdout
    assert results.load(workdir).fractions == (0.2, 0.5)
    assert os.path.exists(os.path.join(workdir, "plots", plots.SWEEP_FIGURE))
    bad = run_cli(
        "--config",
        "tests/configs/tiny.py:lottery",
        "--config.lottery.prune_fraction=0.2,x",
        "--workdir",
        str(tmp_path / "bad"),
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "jaxlth: error: --config.lottery.prune_fraction=0.2,x is neither a number nor a tuple of numbers such as "
        "0.2,0.4"
    ]


def test_a_killed_sweep_resumes_bitwise(tmp_path):
    args = [
        "--config",
        "tests/configs/tiny.py:lottery",
        "--config.lottery.prune_fraction=0.3,0.6",
        "--config.lottery.levels=1",
        "--config.lottery.branches=()",
        "--config.replicates=2",
        "--config.checkpoint_every=5it",
        "--config.train.steps=6ep",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    target = workdir / "checkpoints" / "imp" / "level_01"
    start_and_kill([*args, "--workdir", str(workdir)], lambda: checkpoint_steps(target)[-1:] >= [20])
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for p in FRACTIONS_CLI:
        for x, y in zip(jax.tree.leaves(a.params(1, prune_fraction=p)), jax.tree.leaves(b.params(1, prune_fraction=p))):
            np.testing.assert_array_equal(x, y)
    columns = ["arm", "level", "step", "replicate", "prune_fraction", "split", "metric", "layer", "value"]
    assert_same_rows(a.table, b.table, columns)
