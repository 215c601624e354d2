"""What the run context guarantees after a crash or a misuse (issue "Reliability", fixes 1, 4, 5, 6)."""

import os

import pytest

from jaxlth import config as config_lib, experiments, records, results, workdir as workdir_lib
from jaxlth.errors import UserError
from jaxlth.layout import Layout
from tests.conftest import TINY, run_cli


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
    records.append(path, [{"experiment": "train", "arm": "main", "level": 0, "replicate": 0, "density": 1.0,
                           "step": 9, "epoch": 1.0, "split": "test", "metric": "loss", "value": 0.5}])
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


@pytest.mark.parametrize("override, fragment", [
    ("--config.model.name=lenet_9000", "lenet_9000"),
    ("--config.data.name=imaginary", "imaginary"),
    ("--config.lottery.branches=('magic',)", "unknown lottery branch"),
    ("--config.train.steps=10xp", "malformed step spec"),
])
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
        workdir_lib.claim(str(path), config_lib.from_file(TINY))
    assert os.path.isfile(path)
