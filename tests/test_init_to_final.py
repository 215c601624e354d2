"""The path from each network's start to its trained end (``instability.init_to_final``): its
statistics on hand-made curves, its endpoints against the networks' own evaluations (this run's
dense trunk and every IMP level of a tiny lottery run), its rows, report and figures, and its checks."""

import os

import ml_collections
import numpy as np
import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, results
from jaxlth.analysis import barriers
from jaxlth.errors import UserError
from jaxlth.experiments import instability as instability_lib
from jaxlth.experiments import lottery as lottery_lib
from jaxlth.experiments.context import Context
from jaxlth.experiments.instability import figures
from jaxlth.experiments.instability import run as instability_run
from jaxlth.experiments.instability.init_to_final import STATISTICS
from jaxlth.experiments.lottery.run import Lottery
from tests.conftest import tiny_config

ALPHAS = np.linspace(0.0, 1.0, 5)


def tiny(arg: str, **changes) -> ml_collections.ConfigDict:
    """The tiny config of ``arg`` with 2 replicates, trained like the tiny lottery run, with dotted changes."""
    config = tiny_config(arg)
    config.replicates = 2
    config.train = tiny_config("lottery").train
    for dotted, value in changes.items():
        block, _, field = dotted.rpartition(".")
        (config[block] if block else config)[field] = value
    return config


@pytest.fixture(scope="module")
def lottery_run(tmp_path_factory):
    """A finished tiny lottery run (levels 0 and 1, rewind step 3, 2 replicates), evaluated on the whole
    training set too."""
    workdir = str(tmp_path_factory.mktemp("lottery"))
    config = tiny("lottery", **{"lottery.levels": 1, "lottery.branches": (), "eval_train": True})
    experiments.claim(workdir, config)
    Lottery(Context(config, workdir, lottery_lib.EXPERIMENT)).run()
    return results.load(workdir)


@pytest.fixture(scope="module")
def measured(lottery_run, tmp_path_factory):
    """An instability run measuring only the start-to-end paths, of its trunk and the source's levels."""
    config = tiny(
        "instability",
        **{
            "instability.spawn_steps": "",
            "instability.init_to_final": True,
            "instability.source_workdir": lottery_run.workdir,
            "instability.train_examples": 0,  # the whole training set: the source's train evaluations
        },
    )
    config_lib.validate(config)
    workdir = str(tmp_path_factory.mktemp("init_to_final"))
    experiments.claim(workdir, config)
    instability_run.run(Context(config, workdir, instability_lib.EXPERIMENT))
    return results.load(workdir)


def test_statistics_of_hand_made_curves():
    curves = np.array(
        [
            [2.3, 2.3, 2.0, 1.0, 0.3],  # non-increasing (a plateau, then down)
            [1.0, 0.5, 0.8, 0.3, 0.1],  # a bump of 0.3 after alpha 0.25, never above the start
            [0.5, 0.9, 0.7, 0.2, 0.1],  # rises 0.4 above the start, peak at alpha 0.25
            [1.0, 0.5, 0.5005, 0.3, 0.1],  # a bump of 5e-4: within the tolerance of 1e-3
        ]
    )
    found = barriers.start_to_end_statistics(ALPHAS, curves)
    np.testing.assert_allclose(found["rise"], [0.0, 0.0, 0.4, 0.0], atol=1e-12)
    np.testing.assert_allclose(found["bump"], [0.0, 0.3, 0.4, 5e-4], atol=1e-12)
    np.testing.assert_array_equal(found["monotonic"], [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(found["peak_alpha"], [0.0, 0.0, 0.25, 0.0])  # ties: the first
    strict = barriers.start_to_end_statistics(ALPHAS, curves, tolerance=0.0)
    np.testing.assert_array_equal(strict["monotonic"], [1.0, 0.0, 0.0, 0.0])
    stacked = barriers.start_to_end_statistics(ALPHAS, curves.reshape(2, 2, 5))  # any leading axes
    np.testing.assert_allclose(stacked["bump"], found["bump"].reshape(2, 2), atol=1e-12)
    with pytest.raises(ValueError, match="start at 0"):
        barriers.start_to_end_statistics(ALPHAS[1:], curves[:, 1:])
    with pytest.raises(ValueError, match="tolerance"):
        barriers.start_to_end_statistics(ALPHAS, curves, tolerance=-1.0)


def test_rows_of_every_path_split_and_replicate(measured, lottery_run):
    table = measured.table
    rows = table[table.arm == "init_to_final"]
    assert set(rows["align"]) == {"none"} and set(rows.split) == {"test", "train"}
    paths = sorted({(p, int(level)) for p, level in zip(rows.pair, rows.level)})
    assert paths == [("imp", 0), ("imp", 1), ("trunk", 0)] and lottery_run.levels() == [0, 1]
    for (pair, level), path in rows.groupby(["pair", "level"]):
        curve = path[path.metric == "error"]
        assert len(curve) == 2 * 2 * 5 and len(path[path.metric == "loss"]) == len(curve)  # splits x R x alphas
        for split in ("test", "train"):
            for r in range(2):
                of = path[(path.split == split) & (path.replicate == r)]
                assert sorted(of[of.alpha.isna()].metric) == sorted(STATISTICS)
                for kind in ("loss", "error"):  # the recorded statistics are those of the recorded curve
                    values = of[of.metric == kind].sort_values("alpha").value.to_numpy()
                    expected = barriers.start_to_end_statistics(ALPHAS, values)
                    for name, value in expected.items():
                        assert of[of.metric == f"{kind}_{name}"].value.item() == pytest.approx(float(value))
    mask = lottery_run.mask(1)
    kept = sum(int(mask[n]["kernel"][0].sum()) for n in mask) / sum(mask[n]["kernel"][0].size for n in mask)
    density = rows[(rows.pair == "imp") & (rows.level == 1) & (rows.replicate == 0)].density
    np.testing.assert_allclose(density, kept, rtol=1e-6)
    assert (rows[rows.pair == "trunk"].density == 1.0).all()


def endpoints(rows, split: str, metric: str, alpha: float) -> np.ndarray:
    """The path's ``metric`` (error or loss) at ``alpha`` on ``split``, by replicate."""
    at = rows[(rows.split == split) & (rows.metric == metric) & (rows.alpha == alpha)]
    return at.sort_values("replicate").value.to_numpy()


def evaluated(table, arm: str, level: int, step: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(error, loss)`` by replicate of the training rows of ``arm`` at ``level`` and ``step``."""
    rows = table[(table.arm == arm) & (table.level == level) & (table.step == step) & (table.split == split)]
    accuracy = rows[rows.metric == "accuracy"].sort_values("replicate").value.to_numpy()
    loss = rows[rows.metric == "loss"].sort_values("replicate").value.to_numpy()
    assert len(accuracy) == len(loss) == 2
    return 1.0 - accuracy, loss


def test_the_ends_of_each_path_are_the_networks_own_evaluations(measured, lottery_run):
    """alpha = 0 and 1 are the two networks bitwise ((1 - a) x + a y); their evaluation on the path
    matches the one their training recorded: errors within one example in 10^6 (they are counts), losses
    within float32 rounding (rtol 1e-5: a reduction in another order)."""
    rows = measured.table[measured.table.arm == "init_to_final"]
    steps = int(rows.step.max())
    source, rewind = lottery_run.table, 3  # the tiny lottery recipe rewinds to step 3
    checks = [(rows[rows.pair == "trunk"], measured.table, "trunk", 0, 0, ("test",))]
    for level in (0, 1):
        path = rows[(rows.pair == "imp") & (rows.level == level)]
        checks.append((path, source, "imp", level, rewind, ("test", "train")))
    for path, table, arm, level, start, splits in checks:
        for split in splits:
            for alpha, step in ((0.0, start), (1.0, steps)):
                error, loss = evaluated(table, arm, level, step, split)
                np.testing.assert_allclose(endpoints(path, split, "error", alpha), error, atol=1e-6)
                np.testing.assert_allclose(endpoints(path, split, "loss", alpha), loss, rtol=1e-5)
    final = measured.network(0, arm="init_to_final")  # the trunk's end, as the results API gives it
    assert final["params"]["hidden_0"]["kernel"].shape[0] == 2


def test_report_and_figures(measured, tmp_path):
    text, paths = figures.report(measured, str(tmp_path))
    assert "dense, 0 → T" in text and "IMP level 1" in text and "loss rise" in text
    names = {os.path.basename(p) for p in paths}
    assert {figures.INIT_TO_FINAL_LOSS_FIGURE, figures.INIT_TO_FINAL_ERROR_FIGURE} <= names
    frame = figures.init_to_final_table(measured.table)
    assert len(frame) == 3 * 2 and (frame.n == 2).all()  # paths x splits, 2 replicates each
    trunk = frame[(frame.pair == "trunk") & (frame.split == "test")].iloc[0]
    assert trunk.error_start > trunk.error_end  # training lowered the error from initialisation
    assert 0.0 <= trunk.loss_monotonic <= 1.0 and trunk.loss_rise >= 0.0


def test_settings_are_checked():
    alone = tiny("instability", **{"instability.spawn_steps": "", "instability.init_to_final": True})
    config_lib.validate(alone)  # the dense path alone is something to do
    with pytest.raises(UserError, match="nothing to do.*init_to_final"):
        config_lib.validate(tiny("instability", **{"instability.spawn_steps": ""}))
    with pytest.raises(UserError, match="must name at least one split"):
        config_lib.validate(tiny("instability", **{"instability.init_to_final": True, "instability.splits": ()}))
    loaded = alone.to_dict()  # a config built from a dict (e.g. JSON) is not type-checked on assignment
    loaded["instability"]["init_to_final"] = "yes"
    with pytest.raises(UserError, match="instability.init_to_final must be true or false"):
        config_lib.validate(ml_collections.ConfigDict(loaded))
