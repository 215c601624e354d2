"""``jaxlth.compare`` with control arms: IMP and random reinitialisation of two lottery runs in one figure."""

import os

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from jaxlth import compare, experiments, results  # noqa: E402
from jaxlth.experiments.lottery.arms import IMP  # noqa: E402
from tests.conftest import run_module, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    runs = {}
    for label, rewind in (("k0", "0it"), ("k2", "2it")):
        workdir = str(base / label)
        config = tiny_config(
            "lottery", **{"lottery.levels": 2, "lottery.branches": ("random_reinit",), "lottery.rewind": rewind}
        )
        experiments.run(config, workdir)
        runs[label] = workdir
    return runs


def test_the_table_holds_each_arm_asked_for_of_every_run(two_runs):
    tables = {label: results.load(w).table for label, w in two_runs.items()}
    stats = compare.comparison_table(tables, arms=(IMP, "random_reinit"))
    assert set(stats["run"]) == {"k0", "k2"}
    for label in two_runs:
        mine = stats[stats["run"] == label]
        assert sorted(mine[mine["arm"] == IMP]["level"]) == [0, 1, 2]
        assert sorted(mine[mine["arm"] == "random_reinit"]["level"]) == [1, 2]
        summary = results.load(two_runs[label]).table
        imp = compare.comparison_table({label: summary})
        assert set(imp["arm"]) == {IMP}  # the default draws IMP alone, as before


def test_the_figure_draws_a_line_per_run_and_arm_and_the_dense_bands(two_runs):
    tables = {label: results.load(w).table for label, w in two_runs.items()}
    ax = compare.accuracy_comparison(tables, arms=("random_reinit",))
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["k0", "k0: random reinitialisation", "k2", "k2: random reinitialisation"]
    assert len([line for line in ax.get_lines() if line.get_linestyle() == "--"]) == 2
    assert len([line for line in ax.get_lines() if line.get_linestyle() == ":"]) == 2  # the dense lines


def test_the_command_line_takes_arms_and_refuses_an_unknown_one(two_runs, tmp_path):
    pairs = [f"{label}={w}" for label, w in two_runs.items()]
    compare.main(["--out", str(tmp_path / "out"), "--arms", "imp,random_reinit", *pairs])
    assert os.path.exists(tmp_path / "out" / compare.COMPARE_FIGURE)
    proc = run_module("jaxlth.compare", "--out", str(tmp_path / "x"), "--arms", "imp,nonsense", *pairs)
    assert proc.returncode == 2 and "nonsense" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "x")
