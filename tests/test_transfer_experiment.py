"""The transfer experiment: other runs' masks (and dense, magnitude, random baselines) trained on this task."""

import os
import shutil

import jax
import numpy as np
import pandas as pd
import pytest
from flax import traverse_util

from jaxlth import experiments, plots, results
from jaxlth.errors import UserError
from jaxlth.experiments.transfer import figures, source_masks
from tests.conftest import (
    TINY,
    assert_same_rows,
    checkpoint_steps,
    run_cli,
    start_and_kill,
    tiny_config,
)
from tests.test_cli import assert_clear_error

# Two replicates, one epoch (8 steps); IMP removes half of the weights per level: densities 1, 0.5, 0.25.
COMMON = {"train.steps": "1ep", "replicates": 2}
LOTTERY = {
    **COMMON,
    "lottery.levels": 2,
    "lottery.prune_fraction": 0.5,
    "lottery.rewind": "0it",
    "lottery.branches": (),
}
BASELINES = ("dense", "magnitude_at_rewind", "random")


def flat(tree) -> dict:
    return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(tree)).items()}


def transfer_config(sources, **changes):
    return tiny_config("transfer", **{**COMMON, "transfer.sources": tuple(sources), **changes})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished source lottery runs (task a; task b: other data, 5 classes) and a transfer run of both."""
    root = tmp_path_factory.mktemp("transfer")
    a, b, target = str(root / "task_a"), str(root / "task_b"), str(root / "target")
    experiments.run(tiny_config("lottery", **LOTTERY), a)
    other_task = {"data.synthetic_seed": 3, "data.synthetic_num_classes": 5, "seed": 4}
    experiments.run(tiny_config("lottery", **LOTTERY, **other_task), b)
    sources = (a, f"{b}:replicate=1")
    experiments.run(transfer_config(sources, **{"transfer.baselines": BASELINES}), target)
    return {"a": a, "b": b, "target": target, "sources": sources, "root": root}


def test_each_arm_trains_its_mask_the_sources_levels_nearest_the_density_and_the_baselines(runs):
    run, a, b = results.load(runs["target"]), results.load(runs["a"]), results.load(runs["b"])
    assert run.arms == ("task_a", "task_b", *BASELINES)
    # densities 1, 0.5, 0.25: 0.25 is nearest 0.3; task b's replicate 1 serves both replicates
    for arm, theirs in (("task_a", flat(a.mask(2))), ("task_b", flat(b.mask(2, replicate=1)))):
        mine = flat(run.mask(1, arm=arm))
        assert set(mine) == set(theirs) == {"hidden_0/kernel", "hidden_1/kernel"}
        for layer in mine:
            np.testing.assert_array_equal(mine[layer], np.broadcast_to(theirs[layer], mine[layer].shape))
    assert all(m.all() for m in flat(run.mask(0, arm="dense")).values())
    theta0, magnitude = flat(run.params(which="init")), flat(run.mask(1, arm="magnitude_at_rewind"))
    count = sum(m[0].size for m in magnitude.values())
    for r in range(2):
        kept = np.concatenate([np.abs(theta0[k][r])[magnitude[k][r]] for k in magnitude])
        pruned = np.concatenate([np.abs(theta0[k][r])[~magnitude[k][r]] for k in magnitude])
        assert len(kept) == int(np.floor(0.3 * count)) and kept.min() >= pruned.max()  # the largest |θ0|, globally
    random = flat(run.mask(1, arm="random"))
    assert [sum(m[r].sum() for m in random.values()) for r in range(2)] == [int(np.floor(0.3 * count))] * 2
    assert not all(np.array_equal(random[k], magnitude[k]) for k in random)
    # the rows: every arm's evaluations, the source level and density of the sources' arms
    final = run.final()
    assert list(final["arm"]) == list(run.arms) and (final["n"] == 2).all() and set(final["metric"]) == {"accuracy"}
    assert list(final["source_level"].iloc[:2]) == [2, 2] and final["source_level"].iloc[2:].isna().all()
    np.testing.assert_allclose(final["density"], [0.25, 0.25, 1.0, 0.3, 0.3], atol=2 / count)
    table = run.table
    source_rows = table[table["arm"].isin(["task_a", "task_b"]) & (table["split"] == "test")]
    assert (source_rows["source_level"] == 2).all() and np.allclose(source_rows["source_density"], 0.25)
    chosen = table[table["metric"] == "source_replicate"]
    assert sorted(zip(chosen["arm"], chosen["replicate"], chosen["value"])) == [
        ("task_a", 0, 0.0),
        ("task_a", 1, 1.0),
        ("task_b", 0, 1.0),
        ("task_b", 1, 1.0),
    ]
    assert os.path.getsize(os.path.join(runs["target"], "plots", figures.TRANSFER_FIGURE)) > 10_000
    assert "matching" in figures.format_transfer(table)


def test_the_nearest_level_is_chosen_and_a_tie_goes_to_the_denser():
    assert source_masks.nearest_level({0: 1.0, 1: 0.5, 2: 0.25}, 0.3) == 2
    assert source_masks.nearest_level({0: 1.0, 1: 0.4, 2: 0.2}, 0.3) == 1
    assert source_masks.nearest_level({0: 1.0, 1: 0.8}, 0.3) == 1


def test_every_arm_trains_as_it_would_alone_and_dense_as_a_train_run(runs):
    alone, dense = str(runs["root"] / "alone"), str(runs["root"] / "train")
    experiments.run(transfer_config(runs["sources"][1:], **{"transfer.baselines": ()}), alone)
    experiments.run(tiny_config(None, **COMMON), dense)
    together = results.load(runs["target"])
    one = results.load(alone)
    assert one.arms == ("task_b",)
    for x, y in zip(jax.tree.leaves(one.params(1, arm="task_b")), jax.tree.leaves(together.params(1, arm="task_b"))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    for x, y in zip(jax.tree.leaves(results.load(dense).params()), jax.tree.leaves(together.params(0, arm="dense"))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # the matrix of the two runs (both on synthetic data: told apart by their workdirs)
    frame = plots.transfer_table([runs["target"], alone])
    assert list(frame.index) == ["dense", "task_a", "task_b", "magnitude_at_rewind", "random"]
    targets = ["synthetic (target)", "synthetic (alone)"]
    assert list(dict.fromkeys(frame.columns.get_level_values(0))) == targets
    final = together.final().set_index("arm")
    np.testing.assert_allclose(frame[(targets[0], "mean")], final.loc[list(frame.index), "mean"])
    dense_mean, dense_std = final.loc["dense", "mean"], final.loc["dense", "std"]
    for arm in ("task_a", "task_b", "magnitude_at_rewind", "random"):
        assert frame.loc[arm, (targets[0], "matching")] == (final.loc[arm, "mean"] >= dense_mean - dense_std)
    assert frame[(targets[1], "mean")].isna().tolist() == [True, True, False, True, True]
    assert frame.loc["task_b", (targets[1], "matching")] is None  # no dense arm in that run
    assert frame.attrs["metrics"] == dict.fromkeys(targets, "accuracy")
    text = plots.format_transfer_table(frame)
    assert "synthetic (target) (accuracy %)" in text and "matching" in text
    path = plots.transfer_figure([runs["target"], alone], str(runs["root"] / "matrix.png"))
    assert os.path.getsize(path) > 10_000


def bad_inputs(runs, tmp_path) -> list[tuple[dict, str]]:
    unfinished = str(tmp_path / "unfinished")
    shutil.copytree(runs["a"], unfinished)
    os.remove(os.path.join(unfinished, "finished.json"))
    a = runs["a"]
    return [
        ({"transfer.sources": ()}, "transfer.sources is empty"),
        ({"transfer.sources": (str(tmp_path / "nothing"),)}, "holds no jaxlth run"),
        ({"transfer.sources": (runs["target"],)}, "holds a 'transfer' run, not a lottery run"),
        ({"transfer.sources": (unfinished,)}, "is not a finished lottery run"),
        ({"transfer.sources": (f"{a}:arm=shuffle",)}, "has no finished level of arm 'shuffle'"),
        ({"transfer.sources": (a,), "transfer.density": 1.5}, "transfer.density must be a number in (0, 1)"),
        ({"transfer.sources": (a,), "transfer.density": 0.0}, "transfer.density must be a number in (0, 1)"),
        ({"transfer.sources": (a,), "transfer.baselines": ("dense", "magic")}, "unknown transfer.baselines"),
        ({"transfer.sources": (a,), "transfer.names": ("x", "y")}, "gives 2 name(s) for 1 source(s)"),
        ({"transfer.sources": (a, f"{a}:replicate=1")}, "two sources are named 'task_a'"),
        ({"transfer.sources": (a,), "transfer.names": ("dense",)}, "'dense' is the name of a baseline"),
    ]


def test_bad_inputs_are_one_sentence_before_anything_is_written(runs, tmp_path):
    for changes, fragment in bad_inputs(runs, tmp_path):
        with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            tiny_config("transfer", **changes)
    workdir = tmp_path / "refused"  # masks of other layers: refused once the model is built
    proc = run_cli(
        "--config",
        f"{TINY}:transfer",
        "--workdir",
        str(workdir),
        f"--config.transfer.sources=('{runs['a']}',)",
        "--config.model.options.widths=(32, 24)",
    )
    assert_clear_error(proc, "hidden_1/kernel", "the models differ")
    assert not os.path.exists(workdir / "config.json")


@pytest.mark.slow
def test_bad_inputs_on_the_command_line_exit_2_with_one_sentence(runs, tmp_path):
    # The command line's path (exit 2, one line, nothing written) for a few of them; every message is
    # checked in process by test_bad_inputs_are_one_sentence_before_anything_is_written.
    for changes, fragment in list(bad_inputs(runs, tmp_path))[::4]:
        flags = [f"--config.{key}={value!r}" for key, value in changes.items()]
        assert_clear_error(run_cli("--config", f"{TINY}:transfer", "--workdir", str(tmp_path / "w"), *flags), fragment)


@pytest.mark.slow
def test_a_pretrained_start_is_theta0_with_a_fresh_head(runs, tmp_path):
    workdir = str(tmp_path / "pretrained")
    changes = {"model.pretrained": f"{runs['b']}:level=0", "model.pretrained_head": "fresh", "seed": 5}
    experiments.run(transfer_config(runs["sources"][:1], **changes), workdir)
    run, source = results.load(workdir), results.load(runs["b"])
    theta0, pretrained = flat(run.params(which="init")), flat(source.params(0))
    for layer in ("hidden_0/kernel", "hidden_1/kernel", "hidden_0/bias"):
        np.testing.assert_array_equal(theta0[layer], pretrained[layer])
    assert theta0["output/kernel"].shape == (2, 16, 10) and pretrained["output/kernel"].shape == (2, 16, 5)
    magnitude = flat(run.mask(1, arm="magnitude_at_rewind"))
    assert set(magnitude) == {"hidden_0/kernel", "hidden_1/kernel"}  # the head is never pruned
    for layer, keep in magnitude.items():  # one global threshold: within each layer too
        weights = np.abs(theta0[layer][0])
        assert weights[keep[0]].min() >= weights[~keep[0]].max()


@pytest.mark.slow
def test_kill_during_training_resumes_bitwise_and_a_rerun_trains_nothing(runs, tmp_path):
    sources = ",".join(f"'{s}'" for s in runs["sources"])
    args = [
        "--config",
        f"{TINY}:transfer",
        "--config.train.steps=6ep",
        "--config.checkpoint_every=11it",
        "--config.replicates=2",
        f"--config.transfer.sources=({sources})",
        "--config.transfer.baselines=('dense', 'magnitude_at_rewind', 'random')",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    start_and_kill(
        [*args, "--workdir", str(workdir)], lambda: checkpoint_steps(workdir / "checkpoints" / "transfer") >= [22]
    )
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for arm in a.arms:
        level = 0 if arm == "dense" else 1
        for x, y in zip(jax.tree.leaves(a.params(level, arm=arm)), jax.tree.leaves(b.params(level, arm=arm))):
            np.testing.assert_array_equal(x, y)
    columns = ["arm", "level", "step", "replicate", "split", "metric", "layer", "value"]
    assert_same_rows(a.table, b.table, columns)
    before = pd.read_csv(workdir / "results.csv")
    proc = run_cli(*args, "--workdir", str(workdir), check=True)
    assert "matching" in proc.stdout
    pd.testing.assert_frame_equal(before, pd.read_csv(workdir / "results.csv"))
