"""Data diet: the scores experiment, score-chosen subsets, the data_diet experiment, pretraining on a subset."""

import os

import jax
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, results
from jaxlth.analysis import example_scores as es
from jaxlth.data import selection
from jaxlth.errors import UserError
from jaxlth.training import setup as setup_lib
from tests.conftest import (
    TINY,
    assert_same_rows,
    checkpoint_steps,
    run_cli,
    run_module,
    start_and_kill,
    tiny_config,
)


def spec(**fields):
    s = selection.default_config()
    for k, v in fields.items():
        s[k] = v
    return s


# ----- choosing subsets ---------------------------------------------------------------------------------
def test_subsets_keep_exactly_the_intended_indices():
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 0.0, 8.0, 2.0, 6.0, 4.0])  # easiest first: 5 1 7 3 9 0 8 4 6 2
    labels = np.zeros(10, np.int32)
    assert selection.choose(spec(keep="hardest", fraction=0.3), labels, scores).tolist() == [2, 4, 6]
    assert selection.choose(spec(keep="easiest", size=4), labels, scores).tolist() == [1, 3, 5, 7]
    # drop the 20% easiest (5, 1) and the 30% hardest (4, 6, 2): keep 7, 3, 9, 0, 8
    window = spec(keep="window", drop_easiest=0.2, drop_hardest=0.3)
    assert selection.choose(window, labels, scores).tolist() == [0, 3, 7, 8, 9]
    assert selection.choose(spec(), labels, scores).tolist() == list(range(10))
    chosen = selection.choose(spec(keep="random", fraction=0.5, seed=3), labels, None)
    assert chosen.size == 5 and len(set(chosen)) == 5 and list(chosen) == sorted(chosen)
    assert chosen.tolist() == selection.choose(spec(keep="random", fraction=0.5, seed=3), labels, None).tolist()
    assert chosen.tolist() != selection.choose(spec(keep="random", fraction=0.5, seed=4), labels, None).tolist()


def test_ties_are_broken_by_the_seed_and_class_balance_takes_equal_shares():
    scores = np.repeat([0.0, 1.0], 50)  # forgetting-like: many ties
    labels = np.tile([0, 1], 50)
    a = selection.choose(spec(keep="easiest", size=20, seed=0), labels, scores)
    assert (
        set(a) <= set(range(50))
        and a.tolist() == selection.choose(spec(keep="easiest", size=20, seed=0), labels, scores).tolist()
    )
    assert a.tolist() != selection.choose(spec(keep="easiest", size=20, seed=1), labels, scores).tolist()
    balanced = selection.choose(spec(keep="hardest", size=21, class_balanced=True), labels, scores)
    assert np.bincount(labels[balanced]).tolist() == [11, 10]
    assert set(balanced) <= set(range(50, 100))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"keep": "hardest", "fraction": 1.5, "scores_workdir": "x"}, "fraction"),
        ({"keep": "hardest", "fraction": 0.0, "scores_workdir": "x"}, "fraction"),
        ({"keep": "middle"}, "unknown data.subset.keep"),
        ({"keep": "easiest", "fraction": 0.5}, "needs data.subset.scores_workdir"),
        ({"keep": "window", "drop_easiest": 0.6, "drop_hardest": 0.5, "scores_workdir": "x"}, "drop_easiest"),
    ],
)
def test_bad_subset_specs_are_refused(fields, message):
    with pytest.raises(UserError, match=message):
        selection.check(spec(**fields), "data.subset")


# ----- the scores experiment -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("scores") / "scores")
    experiments.run(tiny_config("scores", replicates=2), workdir)
    return results.load(workdir)


def test_scores_are_saved_per_example_and_equal_the_functions_on_the_saved_networks(scored):
    assert scored.score_steps() == [0, 8]
    el2n = scored.scores("el2n", step="0it", replicates=True)
    assert el2n.shape == (2, 256) and scored.scores("el2n", step=0).shape == (256,)
    np.testing.assert_allclose(
        scored.scores("grand", step="1ep"), scored.scores("grand", step=8, replicates=True).mean(0), rtol=1e-6
    )
    # step 0 is the initialisation: recompute EL2N and GraNd of the saved init networks directly
    setup = setup_lib.build(tiny_config("scores", replicates=2))
    init = checkpoint.load_artifact(results.artifact_dir(scored.workdir, "init"))
    images, labels = setup.data.train_images, setup.data.train_labels
    for r in range(2):
        params = jax.tree.map(lambda x: x[r], init["params"])
        np.testing.assert_allclose(es.el2n(setup.program, params, {}, images, labels), el2n[r], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            es.grand(setup.program, params, {}, images, labels, chunk=64),
            scored.scores("grand", step=0, replicates=True)[r],
            rtol=1e-4,
        )
    forgetting = scored.scores("forgetting", replicates=True)
    history = checkpoint.load_artifact(results.artifact_dir(scored.workdir, "scores/forgetting"))
    assert history["presentations"].sum(axis=1).tolist() == [16 * 32, 16 * 32]  # 16 steps of batch 32
    assert np.all(np.isinf(forgetting) == ~history["learned"])
    assert np.isin(scored.scores("never_learned"), [0.0, 0.5, 1.0]).all()
    rows = scored.table[scored.table["split"] == "scores"]
    assert set(rows["metric"]) == {"el2n_mean", "grand_mean", "forgetting_mean", "never_learned_fraction"}
    assert os.path.exists(os.path.join(scored.workdir, "plots", "score_histogram_forgetting.png"))


def test_score_rows_lost_after_their_artifact_was_saved_are_written_again(scored):
    """A kill between an artifact's commit and its rows: the rerun writes the rows, trains nothing."""
    from jaxlth import records

    path = os.path.join(scored.workdir, "results.csv")
    before = len(records.read_rows(path))
    records.drop(path, lambda row: row.get("split") == "scores")
    assert len(records.read_rows(path)) < before
    experiments.run(tiny_config("scores", replicates=2), scored.workdir)
    assert len(records.read_rows(path)) == before


def test_a_data_subset_trains_on_exactly_the_chosen_examples(scored):
    full = setup_lib.build(tiny_config())
    el2n = scored.scores("el2n", step="1ep")
    config = tiny_config(
        **{
            "data.subset.keep": "hardest",
            "data.subset.fraction": 0.25,
            "data.subset.scores_workdir": scored.workdir,
            "data.subset.score_step": "1ep",
        }
    )
    cut = setup_lib.build(config)
    hardest = np.sort(np.argsort(el2n, kind="stable")[-64:])
    assert cut.dataset.num_train == 64 and cut.steps_per_epoch == 2
    np.testing.assert_array_equal(cut.dataset.train_images, full.dataset.train_images[hardest])
    assert np.min(el2n[hardest]) >= np.max(np.delete(el2n, hardest))


def test_scores_of_another_dataset_are_refused_before_anything_is_written(scored, tmp_path):
    other = {
        "data.synthetic_seed": 5,
        "data.subset.keep": "easiest",
        "data.subset.fraction": 0.5,
        "data.subset.scores_workdir": scored.workdir,
    }
    with pytest.raises(UserError, match="scored another training set"):
        tiny_config(**other)
    proc = run_cli("--config", TINY, "--workdir", str(tmp_path / "w"), *[f"--config.{k}={v}" for k, v in other.items()])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "scored another training set" in proc.stderr
    assert not os.path.exists(tmp_path / "w")
    with pytest.raises(UserError, match="unknown data.subset.score"):
        tiny_config(**{**other, "data.synthetic_seed": 0, "data.subset.score": "loss"})
    experiments.run(tiny_config(), str(tmp_path / "t"))
    with pytest.raises(UserError, match="holds a 'train' run"):
        tiny_config(**{**other, "data.synthetic_seed": 0, "data.subset.scores_workdir": str(tmp_path / "t")})


# ----- data_diet ------------------------------------------------------------------------------------------
def test_data_diet_trains_every_score_and_fraction_in_one_program_each(scored, tmp_path):
    workdir = str(tmp_path / "diet")
    config = tiny_config(
        "data_diet",
        replicates=2,
        **{
            "data_diet.scores_workdir": scored.workdir,
            "data_diet.pruned_fractions": (0.5,),
            "data_diet.scores": ("el2n", "random"),
        },
    )
    experiments.run(config, workdir)
    run = results.load(workdir)
    examples = checkpoint.load_artifact(results.artifact_dir(workdir, "data_diet/pruned_0.5000/examples"))
    assert examples.shape == (4, 128)  # replicate-major: (r0 el2n, r0 random, r1 el2n, r1 random)
    hardest = np.sort(np.argsort(scored.scores("el2n"), kind="stable")[-128:])
    np.testing.assert_array_equal(examples[0], hardest)
    np.testing.assert_array_equal(examples[2], hardest)
    assert examples[1].tolist() != examples[3].tolist()  # each replicate its own random subset
    from jaxlth import plots

    stats = plots.data_diet_table(run.table)
    assert set(map(tuple, stats[["score", "pruned_fraction"]].values)) == {
        ("el2n", 0.0),
        ("el2n", 0.5),
        ("random", 0.0),
        ("random", 0.5),
    }
    assert (stats["n"] == 2).all()
    assert os.path.exists(os.path.join(workdir, "plots", "data_diet.png"))
    with pytest.raises(UserError, match="data_diet.pruned_fractions"):
        tiny_config("data_diet", **{"data_diet.scores_workdir": scored.workdir, "data_diet.pruned_fractions": (1.0,)})
    with pytest.raises(UserError, match="data_diet.scores"):
        tiny_config("data_diet", **{"data_diet.scores_workdir": scored.workdir, "data_diet.scores": ("loss",)})


# ----- lottery.pretrain_data ---------------------------------------------------------------------------------
PRETRAIN = [
    "--config.replicates=2",
    "--config.lottery.levels=1",
    "--config.lottery.branches=()",
    "--config.lottery.pretrain_data.keep=random",
    "--config.lottery.pretrain_data.size=64",
    "--config.lottery.pretrain_data.steps=8ep",
    "--config.checkpoint_every=4it",
]


def test_a_rewind_point_pretrained_on_a_subset_resumes_bitwise_after_a_kill(tmp_path):
    args = ["--config", f"{TINY}:lottery", *PRETRAIN]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    reference = results.load(str(tmp_path / "reference"))
    examples = checkpoint.load_artifact(results.artifact_dir(reference.workdir, "pretrain/examples"))
    assert examples.shape == (2, 64) and examples[0].tolist() != examples[1].tolist()
    pretrain_rows = reference.table[(reference.table["arm"] == "pretrain") & (reference.table["split"] == "test")]
    assert pretrain_rows["step"].max() == 16  # 8 epochs of 64 examples at batch 32
    assert reference.table[reference.table["arm"] == "imp"]["step"].min() == 3  # levels start at the rewind step
    workdir = tmp_path / "killed"
    start_and_kill(
        [*args, "--workdir", str(workdir)],
        lambda: checkpoint_steps(workdir / "checkpoints" / "pretrain" / "level_00")[-1:] >= [8],
    )
    run_cli(*args, "--workdir", str(workdir), check=True)
    killed = results.load(str(workdir))
    for name in ("rewind", "imp/level_01/final"):
        a = checkpoint.load_artifact(results.artifact_dir(reference.workdir, name))
        b = checkpoint.load_artifact(results.artifact_dir(killed.workdir, name))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(u, v)
    assert_same_rows(reference.table, killed.table, ["arm", "level", "step", "replicate", "split", "metric", "value"])


def test_scores_of_a_batchnorm_conv_net_use_the_running_statistics(tmp_path):
    """EL2N/GraNd of a residual BatchNorm network on 32x32 images: eval mode, so one example's score
    does not depend on the others in its chunk."""
    config = tiny_config(
        "scores",
        **{
            "data.synthetic_image_shape": (32, 32, 3),
            "data.synthetic_train_size": 96,
            "scores.at": "4it",
            "scores.kinds": ("el2n", "grand"),
            "scores.chunk": 5,
        },
    )
    config.model.name = "resnet_cifar"
    config.model.options = {"depth": 8, "width": 4}
    experiments.run(config, str(tmp_path / "bn"))
    run = results.load(str(tmp_path / "bn"))
    setup = setup_lib.build(config)
    states = checkpoint.Checkpoints(os.path.join(tmp_path, "bn", "checkpoints", "trunk_states"))
    state, _ = states.restore(4)  # nested dicts: the trunk's state holds its examples too
    states.close()
    params, stats = state["params"], state["batch_stats"]
    assert jax.tree.leaves(stats)
    images, labels = setup.data.train_images, setup.data.train_labels
    one = jax.tree.map(lambda x: x[0], params), jax.tree.map(lambda x: x[0], stats)
    alone = np.asarray([es.el2n(setup.program, *one, images[i : i + 1], labels[i : i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(run.scores("el2n", replicates=True)[0, :3], alone, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(run.scores("grand")))


def test_a_killed_scores_run_resumes_bitwise_with_its_forgetting_counters(tmp_path):
    args = [
        "--config",
        f"{TINY}:scores",
        "--config.replicates=2",
        "--config.train.steps=12ep",
        "--config.scores.at=0it",
        "--config.checkpoint_every=8it",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    start_and_kill(
        [*args, "--workdir", str(workdir)],
        lambda: checkpoint_steps(workdir / "checkpoints" / "trunk_0_96")[-1:] >= [40],
    )
    run_cli(*args, "--workdir", str(workdir), check=True)
    for name in ("scores/forgetting", "scores/step_0000000"):
        a = checkpoint.load_artifact(results.artifact_dir(str(tmp_path / "reference"), name))
        b = checkpoint.load_artifact(results.artifact_dir(str(workdir), name))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(u, v)


def test_compare_prints_runs_side_by_side_and_refuses_bad_input(scored, tmp_path):
    lottery = str(tmp_path / "lottery")
    experiments.run(tiny_config("lottery", **{"lottery.levels": 1, "lottery.branches": ()}), lottery)
    from jaxlth import compare

    compare.main(["--out", str(tmp_path / "out"), f"full={lottery}", f"again={lottery}"])
    assert os.path.exists(tmp_path / "out" / "compare_accuracy_vs_weights.png")
    proc = run_module("jaxlth.compare", "--out", str(tmp_path / "x"), f"s={scored.workdir}")
    assert proc.returncode == 2 and "holds a 'scores' run" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "x")
