"""What a run guarantees after a crash, a broken file or a misuse (issue "Reliability"; the kill torture is
in test_torture.py, ``pytest -m reliability``)."""

import os
import subprocess

import jax
import numpy as np
import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, records, results
from jaxlth import workdir as workdir_lib
from jaxlth.errors import UserError
from jaxlth.layout import Layout
from tests.conftest import TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill


def mask_rows(table, arm="imp", level=1):
    return table[(table.split == "mask") & (table.arm == arm) & (table.level == level)]


def test_rows_of_a_committed_artifact_are_written_when_missing(tmp_path):
    """A kill between a mask's commit and its density rows loses nothing: the rerun writes them."""
    config = config_lib.from_file(f"{TINY}:lottery", **{"lottery.levels": 1, "lottery.branches": ()})
    workdir = str(tmp_path / "run")
    experiments.run(config, workdir)
    expected = mask_rows(results.load(workdir).table)
    assert len(expected) == 2 * 1  # 2 prunable layers, 1 replicate
    records.drop(Layout(workdir).results_file, lambda row: row["split"] == "mask" and row["level"] == "1")
    experiments.run(config, workdir)
    again = mask_rows(results.load(workdir).table)
    assert sorted(again.value) == sorted(expected.value)


def test_a_results_file_cut_mid_line_never_blocks_a_resume(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    config = config_lib.from_file(TINY, **{"train.steps": "8it"})
    experiments.run(config, workdir)
    path = Layout(workdir).results_file
    complete = len(records.read_rows(path))
    with open(path, "a") as f:
        f.write("train,main,0,0,1.0,8,1.0,te")  # a crash in the middle of an append
    assert len(results.load(workdir).table) == complete  # the reader ignores the cut line ...
    assert "cut short" in capsys.readouterr().err  # ... and says so
    records.append(
        path,
        [
            {
                "experiment": "train",
                "arm": "main",
                "level": 0,
                "replicate": 0,
                "density": 1.0,
                "step": 9,
                "epoch": 1.0,
                "split": "test",
                "metric": "loss",
                "value": 0.5,
            }
        ],
    )
    rows = records.read_rows(path)  # the writer dropped the cut line before appending
    assert len(rows) == complete + 1 and rows[-1]["step"] == "9"


def test_a_second_process_on_a_workdir_in_use_is_refused(tmp_path):
    workdir = tmp_path / "run"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it", check=True)
    before = (workdir / "results.csv").read_bytes()
    with workdir_lib.Lock(Layout(str(workdir))):  # as if another run were working there
        proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "another jaxlth process is working in" in proc.stderr
    assert (workdir / "results.csv").read_bytes() == before
    with workdir_lib.Lock(Layout(str(workdir))):  # released when the holder is done
        pass


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--config.model.name=lenet_9000", "lenet_9000"),
        ("--config.data.name=imaginary", "imaginary"),
        ("--config.lottery.branches=('magic',)", "unknown lottery branch"),
        ("--config.train.steps=10xp", "malformed step spec"),
    ],
)
def test_a_refused_run_writes_nothing(tmp_path, override, fragment):
    workdir = tmp_path / "new"
    proc = run_cli("--config", f"{TINY}:lottery", "--workdir", str(workdir), override)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert not workdir.exists()


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        experiments.claim(str(path), config_lib.from_file(TINY))
    assert os.path.isfile(path)


# ----- fixes 3, 7, 8: one sentence for every bad input and broken file --------------------------------------


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("def get_config(:\n", "has a syntax error at line 1"),
        ("x = 1\n", "defines no get_config() function"),
        ("def get_config():\n    return {}['a']\n", "get_config() of"),
        ("import no_such_module_here\n", "fails when imported: ModuleNotFoundError"),
    ],
)
def test_a_broken_config_file_is_one_sentence_naming_it(tmp_path, source, fragment):
    path = tmp_path / "recipe.py"
    path.write_text(source)
    proc = run_cli("--config", str(path), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / "w").exists()


def test_an_unknown_field_is_named_with_the_closest_one(tmp_path):
    proc = run_cli("--config", TINY, "--workdir", str(tmp_path / "w"), "--config.train.stepz=3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "jaxlth: error: unknown config field train.stepz (did you mean train.steps?)"


def test_ignoring_every_layer_is_refused_before_anything_is_written(tmp_path):
    proc = run_cli(
        "--config", f"{TINY}:lottery", "--workdir", str(tmp_path / "w"), "--config.lottery.layers_to_ignore=('.*',)"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "matches every prunable layer of lenet (hidden_0/kernel" in proc.stderr and "nothing is left" in proc.stderr
    assert not (tmp_path / "w").exists()


LOTTERY = [
    "--config",
    f"{TINY}:lottery",
    "--config.lottery.levels=1",
    "--config.lottery.branches=()",
    "--config.checkpoint_every=2it",
    "--config.replicates=2",
]


def test_an_unreadable_newest_checkpoint_is_set_aside_and_the_run_resumes_bitwise(tmp_path):
    reference = tmp_path / "reference"
    run_cli(*LOTTERY, "--workdir", str(reference), check=True)
    workdir = tmp_path / "broken"
    level = workdir / "checkpoints" / "imp" / "level_01"
    start_and_kill([*LOTTERY, "--workdir", str(workdir)], lambda: len(checkpoint_steps(level)) >= 2)
    newest = level / str(checkpoint_steps(level)[-1])
    for root, _, files in os.walk(newest):  # damage every stored array of the newest checkpoint
        for name in files:
            if name.endswith(".safetensors") or "ocdbt" in root or name.startswith("d"):  # ours, or Orbax's
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(max(os.path.getsize(os.path.join(root, name)) // 3, 1))
    proc = run_cli(*LOTTERY, "--workdir", str(workdir), check=True)
    notes = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and "cannot be read" in notes[0] and "resuming from an earlier one" in notes[0], proc.stderr
    assert os.path.isdir(str(level) + ".unreadable")
    for a, b in zip(
        jax.tree.leaves(results.load(str(reference)).network(1)), jax.tree.leaves(results.load(str(workdir)).network(1))
    ):
        np.testing.assert_array_equal(a, b)
    assert_same_rows(
        results.load(str(reference)).table,
        results.load(str(workdir)).table,
        ["arm", "level", "step", "replicate", "split", "metric", "value"],
    )


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 1 MiB mounted at ``tmp_path/disk`` (skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_is_one_sentence_and_the_rerun_after_freeing_space_finishes_bitwise(tmp_path, small_disk):
    args = ["--config", TINY, "--config.replicates=2", "--config.model.options.widths=(256,128)"]  # ~1 MB per state
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    proc = run_cli(*args, "--workdir", str(small_disk / "w"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "E1" not in proc.stderr, proc.stderr
    assert "no space left on the device holding" in proc.stderr and proc.stderr.count("\n") == 1
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    run_cli(*args, "--workdir", str(small_disk / "w"), check=True)
    for a, b in zip(
        jax.tree.leaves(results.load(str(tmp_path / "reference")).network()),
        jax.tree.leaves(results.load(str(small_disk / "w")).network()),
    ):
        np.testing.assert_array_equal(a, b)


def test_a_read_only_workdir_is_one_sentence(tmp_path, small_disk):
    run_cli("--config", TINY, "--workdir", str(small_disk / "done"), "--config.train.steps=4it", check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for name in ("new", "done"):
        proc = run_cli("--config", TINY, "--workdir", str(small_disk / name), "--config.train.steps=4it")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "Read-only file system" in proc.stderr or "read-only file system" in proc.stderr, proc.stderr


@pytest.mark.parametrize("content", [bytes(range(256)), b"a,b\n1,2\n"])
def test_a_results_file_that_is_not_a_results_table_is_refused_and_left_alone(tmp_path, content):
    workdir = tmp_path / "run"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it", check=True)
    (workdir / "results.csv").write_bytes(content)
    proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "results.csv is not a" in proc.stderr
    assert (workdir / "results.csv").read_bytes() == content


def test_a_damaged_config_json_is_one_sentence_and_left_alone(tmp_path):
    workdir = tmp_path / "run"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it", check=True)
    (workdir / "config.json").write_text('{"experiment": "tr')
    proc = run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=4it")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "config.json cannot be read" in proc.stderr
    assert (workdir / "config.json").read_text() == '{"experiment": "tr'


# ----- a table whose tail a crash lost ------------------------------------------------------------------
TORN = [
    "--config",
    f"{TINY}:lottery",
    "--config.lottery.levels=2",
    "--config.lottery.branches=('random_reinit',)",
    "--config.replicates=2",
    "--config.checkpoint_every=4it",
    "--config.eval_every=4it",
    "--config.train.steps=3ep",
]


@pytest.fixture(scope="module")
def torn_reference(tmp_path_factory):
    """An uninterrupted run of the torn-tail tests' settings."""
    workdir = tmp_path_factory.mktemp("torn") / "reference"
    run_cli(*TORN, "--workdir", str(workdir), check=True)
    return workdir


def assert_same_lottery(reference, workdir):
    a, b = results.load(str(reference)), results.load(str(workdir))
    for level in (0, 1, 2):
        for arm in ("imp", "random_reinit") if level else ("imp",):
            for x, y in zip(jax.tree.leaves(a.network(level, arm=arm)), jax.tree.leaves(b.network(level, arm=arm))):
                np.testing.assert_array_equal(x, y)
    assert len(a.table) == len(b.table)
    columns = [c for c in ("arm", "level", "step", "replicate", "split", "metric", "layer", "value") if c in a.table]
    assert_same_rows(a.table, b.table, columns)


def tear(path, cut_lines: int, into_line: int | None, from_step: int | None = None) -> None:
    """Drops the table's rows of steps ``>= from_step`` at its end (when given), then ``cut_lines``
    more lines, and with ``into_line`` cuts the new last line after that many characters: what a
    crash of the machine can leave of rows it had written."""
    lines = open(path).read().splitlines(keepends=True)
    while from_step is not None and lines[-1].split(",")[5].isdigit() and int(lines[-1].split(",")[5]) >= from_step:
        lines.pop()
    kept = lines[: len(lines) - cut_lines]
    text = "".join(kept)
    if into_line is not None:
        text = text[: len(text) - len(kept[-1]) + min(into_line, len(kept[-1]) - 2)]
    open(path, "w").write(text)


@pytest.mark.slow
@pytest.mark.parametrize("cut_lines, into_line", [(0, 40), (3, None), (7, 25)])
def test_a_torn_table_after_a_kill_resumes_to_the_uninterrupted_table(torn_reference, tmp_path, cut_lines, into_line):
    """Killed right after a checkpoint of level 1, then the table's tail lost (a cut line, whole lines):
    the run resumes from the newest checkpoint whose rows are all there and ends bitwise equal."""
    workdir = tmp_path / "torn"
    folder = workdir / "checkpoints" / "imp" / "level_01"
    start_and_kill([*TORN, "--workdir", str(workdir)], lambda: any(s >= 12 for s in checkpoint_steps(folder)))
    newest = max(checkpoint_steps(folder))
    tear(Layout(str(workdir)).results_file, cut_lines, into_line, from_step=newest)  # rows the checkpoint counted
    proc = run_cli(*TORN, "--workdir", str(workdir), check=True)
    assert "lost" in proc.stderr
    assert_same_lottery(torn_reference, workdir)


@pytest.mark.slow
def test_a_finished_run_whose_table_lost_its_tail_writes_the_rows_again(torn_reference, tmp_path):
    """A finished run, its table cut inside the last rows: the rerun replays what wrote them from the
    kept checkpoints (and makes the mask rows again from the masks), ending with the full table."""
    import shutil

    workdir = tmp_path / "finished"
    shutil.copytree(torn_reference, workdir)
    path = Layout(str(workdir)).results_file
    tear(path, 12, 30)
    assert len(records.read_rows(path)) < len(results.load(str(torn_reference)).table)
    proc = run_cli(*TORN, "--workdir", str(workdir), check=True)
    assert "lost" in proc.stderr and "warning" not in proc.stderr
    assert_same_lottery(torn_reference, workdir)


@pytest.mark.slow
def test_a_table_cut_inside_an_artifacts_rows_gets_them_back(torn_reference, tmp_path):
    """The table of a finished run cut just after the first mask row of level 2 (the rest of that
    mask's rows, and everything written after it, lost): the mask rows are made again from the mask,
    the trainings after it replayed, and the table ends equal."""
    import shutil

    workdir = tmp_path / "cut_in_mask"
    shutil.copytree(torn_reference, workdir)
    path = Layout(str(workdir)).results_file
    lines = open(path).read().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("lottery,imp,2,") and ",mask,density," in line)
    open(path, "w").write("".join(lines[: first + 1]))
    run_cli(*TORN, "--workdir", str(workdir), check=True)
    assert_same_lottery(torn_reference, workdir)


@pytest.mark.slow
def test_an_analysis_whose_rows_a_crash_lost_is_measured_again(tmp_path):
    """A finished instability run whose table lost the tail of its last paths' rows: the analysis's
    marker counted them, so the rerun measures those paths again and the table ends equal."""
    import shutil

    args = ["--config", f"{TINY}:instability", "--config.replicates=2", "--config.instability.perturb_scales=(0.5,)"]
    reference = tmp_path / "reference"
    run_cli(*args, "--workdir", str(reference), check=True)
    workdir = tmp_path / "torn"
    shutil.copytree(reference, workdir)
    tear(Layout(str(workdir)).results_file, 9, 20)
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(reference)).table, results.load(str(workdir)).table
    assert len(a) == len(b)
    columns = [
        c for c in ("arm", "level", "spawn_step", "pair", "noise_scale", "alpha", "replicate", "split", "metric")
    ]
    assert_same_rows(a, b, [*columns, "value"])
