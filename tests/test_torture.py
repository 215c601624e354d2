"""Reliability torture (``pytest -m reliability``, a few minutes; not in the default run).

A small lottery run (2 levels, a random-reinit branch, 2 replicates, checkpoints every 2 steps) is
killed with SIGKILL again and again — at random moments, right after an artifact is committed and
while a checkpoint or an artifact is being written — and finally finishes; it must end bitwise
equal to an uninterrupted run, rows included. Its table is also cut at random bytes of its last
rows after kills and after the end (what a machine crash can leave): the reruns end equal too. Two
processes started together on one workdir: one works, the other is refused.
"""

import os
import random
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxlth import checkpoint, results
from tests.conftest import ROOT, TINY, assert_same_rows, run_cli

pytestmark = pytest.mark.reliability

ARGS = [
    "--config",
    f"{TINY}:lottery",
    "--config.lottery.levels=2",
    "--config.lottery.branches=('random_reinit',)",
    "--config.replicates=2",
    "--config.checkpoint_every=2it",
    "--config.eval_every=2it",
    "--config.train.steps=40ep",
    "--config.model.options.widths=(1024,512)",
]  # ~37 s uninterrupted (2026-12-04, 2-core AMD EPYC): long enough for the 18 kills of the first test; the wide
# layers make each checkpoint 21 MB, so that writing one takes long enough for the mid-save kills to catch it
COLUMNS = ["arm", "level", "step", "replicate", "split", "metric", "layer", "value"]


def start(workdir):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "jaxlth.main", *ARGS, "--workdir", str(workdir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc, condition, timeout=120.0) -> bool:
    """SIGKILLs ``proc`` once ``condition()`` holds; False when it ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            proc.kill()
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def committed(workdir):
    """The artifacts committed so far (their safetensors file renamed into place)."""
    return {root for root, _, _ in os.walk(workdir / "artifacts") if checkpoint.artifact_exists(root)}


def writing(workdir) -> bool:
    """Whether a checkpoint (its ``<step>.partial`` folder, or Orbax's temporary one) or an artifact (its ``.tmp``
    file) is being written."""
    for _, dirs, files in os.walk(workdir):
        if any(d.endswith(".partial") or ".orbax-checkpoint-tmp" in d for d in dirs):
            return True
        if any(f.endswith(".safetensors.tmp") for f in files):
            return True
    return False


def assert_same_run(reference, workdir):
    a, b = results.load(str(reference)), results.load(str(workdir))
    for level in (0, 1, 2):
        for arm in ("imp", "random_reinit") if level else ("imp",):
            for x, y in zip(jax.tree.leaves(a.network(level, arm=arm)), jax.tree.leaves(b.network(level, arm=arm))):
                np.testing.assert_array_equal(x, y)
    assert_same_rows(a.table, b.table, [c for c in COLUMNS if c in a.table.columns])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference") / "run"
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    return workdir


def test_killed_at_random_moments_commit_windows_and_mid_save_the_run_ends_bitwise_equal(tmp_path, reference):
    rng = random.Random(0)
    workdir = tmp_path / "killed"
    kills = {"random": 0, "after_commit": 0, "mid_save": 0}
    plan = ["random"] * 10 + ["after_commit"] * 4 + ["mid_save"] * 4
    rng.shuffle(plan)
    for how in plan:
        proc = start(workdir)
        if how == "random":
            moment = time.time() + rng.uniform(1.0, 8.0)  # startup included
            hit = kill_when(proc, lambda: time.time() >= moment)
        elif how == "after_commit":
            before = committed(workdir)
            hit = kill_when(proc, lambda: len(committed(workdir) - before) > 0)
        else:
            hit = kill_when(proc, lambda: writing(workdir))
        kills[how] += hit
        if not hit:
            break  # the run finished before this kill
    assert sum(kills.values()) >= 10 and min(kills.values()) >= 2, kills
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    assert_same_run(reference, workdir)


def test_two_processes_started_together_on_one_workdir(tmp_path, reference):
    workdir = tmp_path / "shared"
    first, second = start(workdir), start(workdir)
    errors = [first.communicate(timeout=300)[1], second.communicate(timeout=300)[1]]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], errors  # the run lasts ~45 s: the second always starts while the first works
    refused = errors[[first.returncode, second.returncode].index(2)]
    assert "Traceback" not in refused and refused.strip().count("\n") == 0, refused
    assert "another jaxlth process is working in" in refused
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    assert_same_run(reference, workdir)


def tear_at(path, rng) -> None:
    """Cuts the table at a random byte inside its last few rows (sometimes on a line boundary: whole
    lines lost): what a crash of the machine can leave of rows it had already written."""
    text = open(path, "rb").read()
    ends = [i + 1 for i, byte in enumerate(text) if byte == ord("\n")]
    rows = rng.randint(1, 12)
    low = ends[max(0, len(ends) - 1 - rows)]
    offset = rng.choice(ends[-rows - 1 :]) if rng.random() < 0.3 else rng.randint(low, len(text) - 1)
    open(path, "wb").write(text[:offset])


def test_a_table_torn_at_random_bytes_after_kills_and_after_the_end_ends_equal(tmp_path, reference):
    """Killed at random moments, its table cut at a random byte of its last rows each time (and the
    finished run's too): every rerun ends bitwise equal to the uninterrupted run, rows included."""
    import shutil

    rng = random.Random(1)
    path = lambda w: os.path.join(w, "results.csv")  # noqa: E731
    workdir = tmp_path / "torn"
    torn = 0
    for _ in range(4):
        proc = start(workdir)
        moment = time.time() + rng.uniform(3.0, 12.0)
        if not kill_when(proc, lambda: time.time() >= moment):
            break
        if os.path.exists(path(workdir)) and os.path.getsize(path(workdir)) > 2000:
            tear_at(path(workdir), rng)
            torn += 1
    assert torn >= 2
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    assert_same_run(reference, workdir)
    for trial in range(2):  # the finished run, torn
        finished = tmp_path / f"finished_{trial}"
        shutil.copytree(reference, finished)
        tear_at(path(finished), rng)
        run_cli(*ARGS, "--workdir", str(finished), check=True)
        assert_same_run(reference, finished)
