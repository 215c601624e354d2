"""Sweeps across jobs: expansion, one workdir per run, finished runs skipped, load_many."""

import os

import pytest

from jaxlth import results, sweep
from jaxlth.errors import UserError
from tests.conftest import ROOT, TINY, run_module


def run_sweep(*args):
    return run_module("jaxlth.sweep", *args, timeout=600)


def sweep_file(tmp_path, seeds, extra=""):
    path = tmp_path / "sweep_seeds.py"
    path.write_text(
        f"CONFIG = {TINY!r}\n"
        "from jaxlth.sweep import grid\n"
        f"def get_sweep():\n    return grid(**{{'seed': {list(seeds)!r}, 'train.steps': ['4it']}}){extra}\n"
    )
    return str(path)


def test_a_grid_is_the_product_of_the_fields_and_names_are_readable():
    runs = sweep.grid(**{"lottery.rewind": ["0it", "500it"], "train.lr": [0.1, 0.05]})
    assert runs == [
        {"lottery.rewind": "0it", "train.lr": 0.1},
        {"lottery.rewind": "0it", "train.lr": 0.05},
        {"lottery.rewind": "500it", "train.lr": 0.1},
        {"lottery.rewind": "500it", "train.lr": 0.05},
    ]
    assert sweep.run_name(3, runs[3]) == "003_rewind=500it_lr=0.05"
    assert sweep.parse_grid(["train.lr=0.1,0.05", "lottery.branches=()"]) == [
        {"train.lr": 0.1, "lottery.branches": ()},
        {"train.lr": 0.05, "lottery.branches": ()},
    ]


def test_a_sweep_runs_each_run_once_skips_finished_ones_and_load_many_labels_rows(tmp_path):
    directory = tmp_path / "sweep"
    proc = run_sweep(sweep_file(tmp_path, [0, 1]), "--workdir", str(directory))
    assert proc.returncode == 0, proc.stderr
    assert "2 runs" in proc.stdout and "0 finished, 2 to run" in proc.stdout
    assert sorted(os.listdir(directory)) == ["000_seed=0_steps=4it", "001_seed=1_steps=4it", "sweep.json"]
    stamp = os.path.getmtime(directory / "000_seed=0_steps=4it" / "results.csv")

    proc = run_sweep(sweep_file(tmp_path, [0, 1, 2]), "--workdir", str(directory))  # the sweep grows by one
    assert proc.returncode == 0, proc.stderr
    assert "2 finished, 1 to run" in proc.stdout and proc.stdout.count("== ") == 1
    assert os.path.getmtime(directory / "000_seed=0_steps=4it" / "results.csv") == stamp

    table = results.load_many(str(directory / "*"))
    assert set(table["seed"]) == {0, 1, 2} and table["run"].nunique() == 3
    assert "train.steps" not in table  # the same in every run: not a swept field
    finals = table[(table["split"] == "test") & (table["metric"] == "accuracy") & (table["step"] == 4)]
    assert len(finals) == 3 and finals["value"].nunique() == 3  # three seeds, three networks


def test_a_bad_run_refuses_the_whole_sweep_before_anything_is_written(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        f"CONFIG = {TINY!r}\ndef get_sweep():\n    return [{{'train.steps': '4it'}}, {{'train.stepz': 3}}]\n"
    )
    proc = run_sweep(str(path), "--workdir", str(tmp_path / "sweep"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "sweep run 1" in proc.stderr and "unknown config field train.stepz" in proc.stderr
    assert not (tmp_path / "sweep").exists()
    with pytest.raises(UserError, match="must define CONFIG"):
        (tmp_path / "empty.py").write_text("x = 1\n")
        sweep.load_sweep_file(str(tmp_path / "empty.py"))


def test_a_grid_on_the_command_line_through_submitit_jobs(tmp_path):
    directory = tmp_path / "sweep"
    proc = run_sweep(
        "--config",
        TINY,
        "--grid",
        "train.lr=0.02,0.05",
        "--grid",
        "train.steps=4it",
        "--workdir",
        str(directory),
        "--executor",
        "submitit_local",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("submitted ") == 2
    table = results.load_many(str(directory / "0*"))
    assert set(table["train.lr"]) == {0.02, 0.05}
    proc = run_sweep(
        "--config",
        TINY,
        "--grid",
        "train.lr=0.02,0.05",
        "--grid",
        "train.steps=4it",
        "--workdir",
        str(directory),
        "--dry_run",
    )
    assert "2 finished, 0 to run" in proc.stdout


def test_a_sweep_file_crossed_with_a_grid_and_a_field_set_twice(tmp_path):
    path = os.path.join(ROOT, "configs", "sweeps", "lenet_rewind.py")
    _, overrides = sweep.load_sweep_file(path)
    both = sweep.crossed(overrides, sweep.parse_grid(["seed=0,1"]))
    assert both == [{**o, "seed": s} for o in overrides for s in (0, 1)]
    proc = run_sweep(path, "--grid", "seed=0,1", "--workdir", str(tmp_path / "sweep"), "--dry_run")
    assert proc.returncode == 0 and f"0 finished, {2 * len(overrides)} to run" in proc.stdout, proc.stderr
    field = next(iter(overrides[0]))
    proc = run_sweep(path, "--grid", f"{field}=1,2", "--workdir", str(tmp_path / "twice"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"--grid sets {field}, which the sweep file already sweeps" in proc.stderr
    assert not (tmp_path / "twice").exists()


def test_the_example_sweep_plans_its_runs():
    config, overrides = sweep.load_sweep_file(os.path.join(ROOT, "configs", "sweeps", "lenet_rewind.py"))
    runs = sweep.plan(os.path.join(ROOT, config), overrides, "/nonexistent/sweep")
    assert len(runs) == 8 and runs[0].name.startswith("000_rewind=0it_retrain=weight_rewind")
