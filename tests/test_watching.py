"""Watching a run live (``log.tensorboard``, ``log.wandb_project``): every row of results.csv reaches
TensorBoard and W&B once, under its run and name, a killed run continues the same runs without a
duplicate, and a writer that fails is one line on stderr that changes nothing else."""

import csv
import errno
import glob
import json
import os
import struct
import sys

import numpy as np
import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, fields, watching
from jaxlth.checkpoint import load_artifact
from jaxlth.errors import UserError
from jaxlth.experiments import recipes, registry
from tests.conftest import TINY, checkpoint_steps, run_cli, start_and_kill, tiny_config

CORE = {"experiment", "arm", "level", "replicate", "density", "step", "epoch", "split", "metric", "value"}
SPLITS = ("test", "train")  # the training rows


# ----- reading what was written, independently of jaxlth.watching ----------------------------------------
def rows_of(workdir) -> list[dict]:
    with open(os.path.join(workdir, "results.csv"), newline="") as f:
        return list(csv.DictReader(f))


def expected_run(row: dict, columns) -> str:
    """The TensorBoard run a row belongs in, spelled from its results.csv cells."""
    parts = [row["arm"], f"level_{int(row['level']):02d}", f"replicate_{row['replicate']}"]
    parts += [f"{c}_{row[c].replace('/', '_')}" for c in columns if row.get(c)]
    return "/".join(parts)


def expected_tag(row: dict) -> str:
    return f"{row['split']}/{row['metric']}"


def tensorboard_scalars(workdir) -> dict:
    """``{(run, tag): [(step, value), ...]}`` read by TensorBoard's own event reader, every event kept."""
    from tensorboard.backend.event_processing import event_accumulator

    root, out = os.path.join(workdir, "tensorboard"), {}
    runs = {os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "*tfevents*"), recursive=True)}
    for folder in sorted(runs):
        accumulator = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out[(os.path.relpath(folder, root), tag)] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    return out


def wandb_records(path: str):
    """The records of a W&B transaction log (``run-<id>.wandb``: a LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2

    data, block = open(path, "rb").read(), 32768
    assert data[:4] == b":W&B", path
    at, pending = 7, b""
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a header is padding
            at += block - at % block
            continue
        _, length, kind = struct.unpack("<IHB", data[at : at + 7])
        if kind == 0:
            at += block - at % block
            continue
        chunk, at = data[at + 7 : at + 7 + length], at + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def holds_history(log: str) -> bool:
    """Whether a W&B log being written already holds a history record (its last record may be torn)."""
    try:
        return any(record.WhichOneof("record_type") == "history" for record in wandb_records(log))
    except Exception:  # a torn last record of a log still being written
        return False


def wandb_folders(workdir) -> list[str]:
    """The offline W&B run folders of ``workdir``, oldest first."""
    return sorted(glob.glob(os.path.join(workdir, "wandb", "offline-run-*")))


def wandb_run(folders: list[str]) -> dict:
    """What offline W&B run folders hold: their ids, the config, the history (``(key, step) -> [values]``
    against each key's step axis) and the images logged."""
    out = {"ids": [], "config": {}, "history": {}, "images": {}}
    for folder in folders:
        (log,) = glob.glob(os.path.join(folder, "run-*.wandb"))
        out["ids"].append(os.path.basename(log)[4:-6])
        for record in wandb_records(log):
            kind = record.WhichOneof("record_type")
            if kind == "config":
                out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                items = {}
                for item in record.history.item:
                    names = list(item.nested_key) or [item.key]
                    if len(names) == 2:  # a field of an image: ("figures/<name>", field)
                        out["images"].setdefault(names[0], {"folder": folder})[names[1]] = json.loads(item.value_json)
                    else:
                        items[names[0]] = json.loads(item.value_json)
                for key, value in items.items():
                    if not key.startswith("_") and not key.endswith("/step"):
                        axis = key.rsplit("/", 2)[0] + "/step"
                        out["history"].setdefault((key, items[axis]), []).append(value)
    return out


def expected_key(row: dict, columns) -> str:
    return f"{expected_run(row, columns)}/{expected_tag(row)}".replace(".", "p")


# ----- the layout and the fields -------------------------------------------------------------------------
def test_every_coordinate_of_a_row_makes_its_run_distinct():
    columns = registry.get("lottery").columns
    row = {"experiment": "lottery", "arm": "imp", "level": 3, "replicate": 1, "step": 40, "split": "test"}
    rows = [dict(row, prune_fraction=f) for f in (0.2, 0.5)] + [
        dict(row, prune_fraction=0.2, particle=p) for p in (0, 1)
    ]
    paths = [watching.run_path(r, columns) for r in rows]
    assert len(set(paths)) == 4
    assert paths[0] == ("imp", "level_03", "replicate_1", "prune_fraction_0.2")
    assert paths[3] == ("imp", "level_03", "replicate_1", "prune_fraction_0.2", "particle_1")
    layer = watching.run_path(dict(row, prune_fraction=0.2, layer="hidden_0/kernel"), columns)
    assert layer[-1] == "layer_hidden_0_kernel"  # a path separator in a value stays one folder
    spawn = registry.get("instability").columns
    assert watching.run_path(dict(row, arm="copies", spawn_step=4), spawn)[-1] == "spawn_step_4"
    assert watching.wandb_key(paths[0], "test/accuracy") == "imp/level_03/replicate_1/prune_fraction_0p2/test/accuracy"
    found = watching.points([dict(row, metric="accuracy", value=0.5), dict(row, metric="x", value="n/a")], columns)
    assert found == [(("imp", "level_03", "replicate_1"), "test/accuracy", 40, 0.5)]


def test_a_rerun_may_change_every_log_field_and_a_bad_mode_is_one_sentence():
    saved = fields.to_dict(config_lib.base_config())
    current = json.loads(json.dumps(saved))
    current["log"] = {"tensorboard": True, "wandb_project": "p", "wandb_entity": "me", "wandb_mode": "offline"}
    for name in registry.names():
        experiment = registry.get(name)
        assert recipes.rerun_differences(saved, current, experiment) == []
        assert recipes.finished_view(saved, experiment) == recipes.finished_view(current, experiment)
    with pytest.raises(UserError, match="log.wandb_mode must be one of online, offline"):
        tiny_config(**{"log.wandb_mode": "sometimes"})


# ----- a writer that fails -------------------------------------------------------------------------------
def run_tiny(workdir, **changes) -> bytes:
    """Runs the tiny training in this process; returns the bytes of its results.csv."""
    config = tiny_config(**{"train.steps": "2ep", **changes})
    experiments.run(config, str(workdir))
    with open(os.path.join(workdir, "results.csv"), "rb") as f:
        return f.read()


def artifacts(workdir) -> dict:
    """``{name: the bytes of its leaves}`` of every artifact of ``workdir`` (Orbax names its files at random)."""
    import jax

    names = [os.path.relpath(p.parent, workdir / "artifacts") for p in (workdir / "artifacts").rglob("_METADATA")]
    return {
        n: [np.asarray(x).tobytes() for x in jax.tree.leaves(load_artifact(str(workdir / "artifacts" / n)))]
        for n in names
    }


def jaxlth_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("jaxlth: log.")]


@pytest.fixture
def wandb_in_this_process():
    """Lets go of the wandb service a run in this process starts (subprocesses would inherit it through
    $WANDB_SERVICE, and a killed one would leave its run in use there)."""
    yield
    if sys.modules.get("wandb") is not None:
        sys.modules["wandb"].teardown()
    os.environ.pop("WANDB_SERVICE", None)


def test_a_failing_writer_is_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys, wandb_in_this_process):
    plain = run_tiny(tmp_path / "plain")
    capsys.readouterr()

    def full_disk(self, found):
        raise OSError(errno.ENOSPC, "No space left on device")

    def broken(self, found):
        raise RuntimeError("inside the writer")

    monkeypatch.setattr(watching.TensorBoard, "rows", full_disk)
    monkeypatch.setattr(watching.WandB, "rows", broken)
    changes = {"log.tensorboard": True, "log.wandb_project": "jaxlth-tests", "log.wandb_mode": "offline"}
    assert run_tiny(tmp_path / "full", **changes) == plain
    tensorboard, wandb = jaxlth_lines(capsys.readouterr().err)  # once each, not once per row
    assert "log.tensorboard stopped writing (OSError" in tensorboard and "No space left on device" in tensorboard
    assert wandb.startswith("jaxlth: log.wandb_project stopped writing (RuntimeError: inside the writer)")
    assert artifacts(tmp_path / "full") == artifacts(tmp_path / "plain")


def test_a_missing_package_is_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys):
    plain = run_tiny(tmp_path / "plain")
    capsys.readouterr()
    for name in [m for m in sys.modules if m.split(".")[0] in ("tensorboardX", "wandb")] + ["tensorboardX", "wandb"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing them (or a part of them) raises ImportError
    changes = {"log.tensorboard": True, "log.wandb_project": "jaxlth-tests", "log.wandb_mode": "offline"}
    assert run_tiny(tmp_path / "bare", **changes) == plain
    lines = jaxlth_lines(capsys.readouterr().err)
    tail = "package (pip install 'jaxlth[watch]'); the run goes on without it"
    assert lines == [
        f"jaxlth: log.tensorboard needs the tensorboardX {tail}",
        f"jaxlth: log.wandb_project needs the wandb {tail}",
    ]
    assert not (tmp_path / "bare" / "tensorboard").exists()


# ----- whole runs ----------------------------------------------------------------------------------------
WANDB = ["--config.log.wandb_project=jaxlth-tests", "--config.log.wandb_mode=offline"]


@pytest.mark.slow
def test_every_row_reaches_tensorboard_and_wandb_once(tmp_path):
    workdir = tmp_path / "lottery"
    proc = run_cli(
        "--config", f"{TINY}:lottery", "--workdir", str(workdir), "--config.log.tensorboard=true", *WANDB, check=True
    )
    assert not jaxlth_lines(proc.stderr), proc.stderr
    columns = registry.get("lottery").columns
    rows = rows_of(workdir)
    assert {r["prune_fraction"] for r in rows if r["split"] in SPLITS} >= {"0.2"} and len(rows) > 100
    scalars, run = tensorboard_scalars(workdir), wandb_run(wandb_folders(workdir))

    expected = {}
    for row in rows:
        expected.setdefault((expected_run(row, columns), expected_tag(row)), []).append(
            (int(row["step"]), float(np.float32(row["value"])))
        )
    assert {k: sorted(v) for k, v in scalars.items()} == {k: sorted(v) for k, v in expected.items()}
    assert any(split == "test" for _, tag in scalars for split in [tag.split("/")[0]])

    history = {(expected_key(row, columns), int(row["step"])): [float(row["value"])] for row in rows}
    assert run["history"] == history  # every row once, its value exact, against its own step axis
    (saved_id,) = set(run["ids"])
    assert json.load(open(workdir / "wandb_run.json"))["id"] == saved_id
    assert run["config"]["experiment"] == "lottery" and run["config"]["lottery"]["levels"] == 2
    assert run["config"]["log"]["wandb_project"] == "jaxlth-tests"
    figures = {os.path.basename(p)[:-4] for p in glob.glob(str(workdir / "plots" / "*.png"))}
    assert figures and set(run["images"]) == {f"figures/{name}" for name in figures}
    for image in run["images"].values():
        assert image["_type"] == "image-file" and os.path.isfile(os.path.join(image["folder"], "files", image["path"]))


@pytest.mark.slow
def test_a_killed_run_continues_its_runs_without_a_duplicate(tmp_path):
    args = ["--config", TINY, "--config.train.steps=20ep", "--config.eval_every=2it", "--config.log.tensorboard=true"]
    reference, workdir = tmp_path / "reference", tmp_path / "killed"
    run_cli(*args, "--workdir", str(reference), check=True)

    def flushed() -> bool:  # W&B has written a row to its log (it writes every second) and a checkpoint is there
        logs = glob.glob(str(workdir / "wandb" / "offline-run-*" / "run-*.wandb"))
        return bool(logs) and checkpoint_steps(workdir / "checkpoints") != [] and holds_history(logs[0])

    start_and_kill([*args, *WANDB, "--workdir", str(workdir)], flushed)
    killed_at = checkpoint_steps(workdir / "checkpoints")[-1]
    assert killed_at < 160, "the run ended before it was killed"
    record = json.load(open(workdir / "wandb_run.json"))
    before = tensorboard_scalars(workdir)
    assert before and max(step for points in before.values() for step, _ in points) >= killed_at
    proc = run_cli(*args, *WANDB, "--workdir", str(workdir), check=True)
    assert not jaxlth_lines(proc.stderr), proc.stderr

    after = tensorboard_scalars(workdir)
    for points in after.values():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), "a step was logged twice"
    assert after == tensorboard_scalars(reference)  # the same runs, tags, steps and values, bit for bit
    assert {path for path, _ in after} == {"main/level_00/replicate_0"}

    folders = wandb_folders(workdir)
    run, killed = wandb_run(folders), wandb_run(folders[:1])
    assert len(run["ids"]) == 2 and set(run["ids"]) == {record["id"]}  # one W&B run, resumed
    assert killed["history"], "the killed run had logged nothing to W&B: the test proves nothing"
    reference_rows = {(expected_key(r, ()), int(r["step"])): float(r["value"]) for r in rows_of(reference)}
    for key, values in run["history"].items():
        assert values == [reference_rows[key]], key  # never twice, and the value of the uninterrupted run
    last = max(record["logged"].values())  # what the killed run had logged (W&B may not have written its last second)
    assert {k for k in reference_rows if k[1] > last} <= set(run["history"])  # the rest came after the resume
    print(f"W&B: {len(run['history'])} of {len(reference_rows)} rows, {len(killed['history'])} before the kill")
    assert run["config"]["train"]["steps"] == "20ep"
