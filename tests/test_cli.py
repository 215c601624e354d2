"""The command line: clear one-sentence errors for bad input, refusing foreign workdirs, exact resume."""

import hashlib
import json
import os
import re
import shutil

import jax
import numpy as np
import pytest

from jaxlth import experiments, results
from tests.conftest import TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill

pytestmark = pytest.mark.slow


def assert_clear_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("jaxlth: error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def tree_digest(folder):
    digest = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return digest


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("--config.model.name=resnet1000", ["unknown model 'resnet1000'", "lenet_300_100"]),
        ("--config.train.steps=10xp", ["train.steps", "'10xp'"]),
        ("--config.eval_every=0it", ["eval_every"]),
        ("--config.replicates=0", ["replicates"]),
        ("--config.train.optimizer=rmsprop", ["train.optimizer", "rmsprop"]),
        ("--config.experiment=dance", ["unknown experiment 'dance'"]),
    ],
)
def test_bad_config_gives_one_clear_sentence(tmp_path, override, fragments):
    workdir = tmp_path / "run"
    proc = run_cli("--config", TINY, "--workdir", str(workdir), override)
    assert_clear_error(proc, *fragments)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--config", "configs/no_such_recipe.py"], ["configs/no_such_recipe.py", "does not exist"]),
        (["--config", f"{TINY}:sideways"], ["unknown config argument 'sideways'"]),
        (["--config", TINY, "--config.train.lr=fast"], ["train.lr", "'fast'"]),
        (["--config", TINY, "--config.trian.lr=0.1"], ["unknown config field trian.lr (did you mean train?)"]),
    ],
)
def test_bad_config_files_and_overrides_give_one_clear_sentence(tmp_path, args, fragments):
    assert_clear_error(run_cli(*args, "--workdir", str(tmp_path / "run")), *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_data_says_where_it_looked(tmp_path):
    proc = run_cli(
        "--config",
        TINY,
        "--workdir",
        str(tmp_path / "run"),
        "--config.data.name=mnist",
        "--config.data.source=idx",
        f"--config.data.dir={tmp_path / 'nowhere'}",
        env={"JAXLTH_DATA_DIR": str(tmp_path / "empty")},
    )
    assert_clear_error(proc, str(tmp_path / "nowhere"))


def test_missing_workdir_flag(tmp_path):
    assert_clear_error(run_cli("--config", TINY), "--workdir")


def test_fit_says_how_many_replicates_the_memory_holds_and_writes_nothing(tmp_path):
    proc = run_cli(
        "--config",
        f"{TINY}:instability",
        "--fit",
        "--config.replicates=3",
        "--workdir",
        str(tmp_path / "r"),
        check=True,
    )
    assert re.fullmatch(
        r"3 replicate\(s\); the 1 device\(s\) hold up to \d{4,}, 2 networks trained and 5 evaluated "
        r"per replicate \(a network: \d+ KiB in training, \d+ KiB in evaluation; [\d.]+ GiB free per "
        r"device\)\n",
        proc.stdout,
    ), proc.stdout
    assert not (tmp_path / "r").exists()


def test_a_workdir_holding_another_experiment_is_refused_untouched(tmp_path):
    workdir = tmp_path / "run"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it", check=True)
    before = tree_digest(workdir)
    proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it", "--config.train.lr=0.05")
    assert_clear_error(proc, "different experiment", "train.lr")
    assert tree_digest(workdir) == before


def test_a_non_empty_folder_is_not_used_as_workdir(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    assert_clear_error(run_cli("--config", TINY, "--workdir", str(tmp_path)), "not empty")
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_a_corrupt_checkpoint_is_kept_aside_and_the_run_trains_again_from_the_start(tmp_path):
    workdir = tmp_path / "run"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=8it", check=True)
    final = results.load(str(workdir)).network()
    shutil.rmtree(workdir / "artifacts" / "main" / "level_00" / "final")  # as if killed before it was saved
    latest = max(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    for base, _, files in os.walk(workdir / "checkpoints" / str(latest)):
        for name in files:
            with open(os.path.join(base, name), "r+b") as f:
                f.truncate(3)
    proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=8it", check=True)
    notes = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and f"at step {latest}" in notes[0] and "cannot be read" in notes[0], proc.stderr
    kept = workdir / "checkpoints.unreadable" / str(latest)
    assert kept.is_dir() and all(os.path.getsize(os.path.join(b, f)) <= 3 for b, _, fs in os.walk(kept) for f in fs)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(results.load(str(workdir)).network())):
        np.testing.assert_array_equal(a, b)  # trained again from the start: bitwise the same network


def test_run_writes_config_results_and_checkpoints(tmp_path):
    workdir = tmp_path / "run"
    proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.replicates=2", check=True)
    assert "test accuracy" in proc.stdout
    run = results.load(str(workdir))
    assert run.config["replicates"] == 2 and run.config["train"]["steps"] == "3ep"
    table = run.table
    assert list(table.columns) == list(results.COLUMNS)  # plain training rows have the core columns only
    test_acc = table[(table.split == "test") & (table.metric == "accuracy")]
    # Evaluations at 0, every 5 steps and at the end (24): 0,5,10,15,20,24 for 2 replicates.
    assert sorted(test_acc.step.unique()) == [0, 5, 10, 15, 20, 24]
    assert set(test_acc.replicate) == {0, 1}
    assert (table.density == 1.0).all()
    final = run.params()
    assert final["hidden_0"]["kernel"].shape == (2, 784, 32)
    assert run.params(replicate=1)["hidden_0"]["kernel"].shape == (784, 32)
    assert not np.allclose(run.params(which="init")["hidden_0"]["kernel"], final["hidden_0"]["kernel"])
    assert run.mask()["hidden_0"]["kernel"].all() and "output" not in run.mask()
    steps = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())
    assert steps[-1] == 24 and len(steps) <= 3


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    args = [
        "--config",
        TINY,
        "--config.train.steps=10ep",
        "--config.replicates=2",
        "--config.checkpoint_every=4it",
        "--config.eval_every=7it",
    ]
    reference = tmp_path / "reference"
    run_cli(*args, "--workdir", str(reference), check=True)

    workdir = tmp_path / "killed"
    for kill_after_checkpoints in (3, 11):
        start_and_kill(
            [*args, "--workdir", str(workdir)],
            lambda: checkpoint_steps(workdir / "checkpoints")[-1:] >= [4 * kill_after_checkpoints],
        )
    run_cli(*args, "--workdir", str(workdir), check=True)

    a, b = results.load(str(reference)), results.load(str(workdir))
    for x, y in zip(_leaves(a.params()), _leaves(b.params())):
        np.testing.assert_array_equal(x, y)
    cols = ["step", "replicate", "split", "metric", "value"]
    assert_same_rows(a.table, b.table, cols)


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_compiled_programs_are_cached_between_runs(tmp_path):
    cache = tmp_path / "xla"
    env = {"JAX_COMPILATION_CACHE_DIR": "", "JAXLTH_COMPILATION_CACHE": str(cache)}
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(experiments.MIN_COMPILE_SECONDS)  # jaxlth's own
    run_cli("--config", TINY, "--workdir", str(tmp_path / "run"), "--config.train.steps=1ep", env=env, check=True)
    assert len(os.listdir(cache)) >= 2  # init and the training chunk at least (the others may compile in < 0.1 s)
    run_cli("--config", TINY, "--workdir", str(tmp_path / "again"), "--config.train.steps=1ep", env=env, check=True)
    timing = json.loads((tmp_path / "again" / "timing.json").read_text())
    assert timing["loaded"] >= 2  # ... loaded by the next run
    off = tmp_path / "off"
    env = {"JAX_COMPILATION_CACHE_DIR": "", "JAXLTH_COMPILATION_CACHE": "off", "HOME": str(off)}
    run_cli("--config", TINY, "--workdir", str(tmp_path / "run2"), "--config.train.steps=1ep", env=env, check=True)
    assert not (off / ".cache" / "jaxlth").exists()
