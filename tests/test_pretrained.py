"""Starting from pretrained weights, rewinding to them, and carrying masks to another run."""

import json
import os

import jax
import numpy as np
import pytest
from flax import traverse_util

from jaxlth import checkpoint, drawing, experiments, results, weights
from jaxlth.errors import UserError
from jaxlth.experiments.lottery import figures
from jaxlth.experiments.lottery.arms import ARMS
from jaxlth.training import setup as setup_lib
from tests.conftest import TINY, drawn_variables, run_cli, tiny_config
from tests.test_cli import assert_clear_error, tree_digest

HIDDEN = ("hidden_0", "hidden_1")


def flat(tree) -> dict:
    return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(tree)).items()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished tiny training run of 2 replicates on 10 classes: the pretrained networks."""
    workdir = str(tmp_path_factory.mktemp("pretrained") / "source")
    experiments.run(tiny_config(None, **{"train.steps": "1ep", "replicates": 2}), workdir)
    return workdir


@pytest.fixture(scope="module")
def source_lottery(tmp_path_factory):
    """A finished tiny lottery run (2 levels, 2 replicates): the masks carried to other runs."""
    workdir = str(tmp_path_factory.mktemp("pretrained") / "lottery")
    config = tiny_config("lottery", **{"lottery.branches": (), "train.steps": "1ep", "replicates": 2})
    experiments.run(config, workdir)
    return workdir


def started(source, tmp_path, name="run", arg=None, **changes):
    config = tiny_config(arg, **{"train.steps": "1ep", "model.pretrained": source, "replicates": 2, **changes})
    workdir = str(tmp_path / name)
    experiments.run(config, workdir)
    return results.load(workdir), config


def test_every_pretrained_leaf_is_the_checkpoints_and_a_fresh_head_is_each_replicates_own(source, tmp_path):
    run, config = started(source, tmp_path, **{"model.pretrained_head": "fresh", "seed": 5})
    init, pretrained = flat(run.params(which="init")), flat(results.load(source).params())
    for layer in HIDDEN:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(init[f"{layer}/{leaf}"], pretrained[f"{layer}/{leaf}"])
    plain = config.copy_and_resolve_references()
    plain.model.pretrained = ""
    own = flat(setup_lib.build(plain).init_state().params)  # the replicates' own random initialisation
    for leaf in ("output/kernel", "output/bias"):
        np.testing.assert_array_equal(init[leaf], own[leaf])
        assert not np.array_equal(init[leaf][0], init[leaf][1])
        assert not np.array_equal(init[leaf], pretrained[leaf])
    described = run.pretrained
    assert described["head"] == "fresh" and described["kind"] == "workdir"
    assert described["source_replicates"] == [0, 1]
    assert "params/hidden_0/kernel" in described["loaded"] and "params/output/kernel" in described["fresh"]
    rows = run.table[(run.table["metric"] == "source_replicate") & (run.table["split"] == "start")]
    assert sorted(zip(rows["replicate"], rows["value"])) == [(0, 0.0), (1, 1.0)]


def test_a_head_of_another_shape_starts_fresh_and_keep_refuses_it(source, tmp_path):
    run, _ = started(source, tmp_path, **{"data.synthetic_num_classes": 5})
    assert run.pretrained["head"] == "fresh"
    assert flat(run.params(which="init"))["output/kernel"].shape == (2, 16, 5)
    workdir = tmp_path / "keep"
    config = tiny_config(
        None, **{"model.pretrained": source, "model.pretrained_head": "keep", "data.synthetic_num_classes": 5}
    )
    with pytest.raises(UserError, match="output/(kernel|bias) of shape .*model.pretrained_head=keep"):
        experiments.run(config, str(workdir))
    assert not os.path.exists(workdir / "config.json")


def test_the_head_of_the_checkpoint_is_kept_when_it_fits(source, tmp_path):
    run, _ = started(source, tmp_path)
    init, pretrained = flat(run.params(which="init")), flat(results.load(source).params())
    np.testing.assert_array_equal(init["output/kernel"], pretrained["output/kernel"])
    assert run.pretrained["head"] == "checkpoint"


def test_replicates_start_from_the_chosen_network_when_the_counts_differ(source, tmp_path):
    pretrained = flat(results.load(source).params())
    run, _ = started(source, tmp_path, "three", replicates=3)
    assert run.pretrained["source_replicates"] == [0, 0, 0]
    run, _ = started(f"{source}:replicate=1,which=final", tmp_path, "chosen", replicates=3)
    assert run.pretrained["source_replicates"] == [1, 1, 1]
    init = flat(run.params(which="init"))
    for r in range(3):
        np.testing.assert_array_equal(init["hidden_1/kernel"][r], pretrained["hidden_1/kernel"][1])


def test_a_pretrained_head_stays_dense_unless_the_model_defaults_are_off(source, tmp_path):
    run, _ = started(source, tmp_path, "dense_head", **{"pruning.layers_to_ignore": ()})
    assert "output" not in run.mask(0)
    run, _ = started(
        source, tmp_path, "pruned_head", **{"pruning.layers_to_ignore": (), "pruning.model_defaults": False}
    )
    assert "output" in run.mask(0)


def test_an_orbax_checkpoint_of_one_network_starts_every_replicate(source, tmp_path):
    one = jax.tree.map(lambda x: np.asarray(x)[1], results.load(source).network())
    folder = str(tmp_path / "orbax_network")
    checkpoint.save_artifact(folder, one)
    run, _ = started(folder, tmp_path)
    assert run.pretrained["kind"] == "orbax" and run.pretrained["source_replicates"] == [0, 0]
    init = flat(run.params(which="init"))
    np.testing.assert_array_equal(init["hidden_0/kernel"][0], flat(one["params"])["hidden_0/kernel"])
    np.testing.assert_array_equal(init["hidden_0/kernel"][1], flat(one["params"])["hidden_0/kernel"])


def test_rewinding_to_pretrained_weights_and_the_one_shot_magnitude_baseline(source, tmp_path):
    changes = {
        "lottery.rewind": "pretrained",
        "lottery.levels": 1,
        "lottery.branches": ("magnitude_at_rewind", "random_reinit"),
        "pruning.layers_to_ignore": (),
    }
    run, _ = started(source, tmp_path, "lottery", "lottery", **changes)
    pretrained = flat(results.load(source).params())
    np.testing.assert_array_equal(flat(run.load("rewind")["params"])["hidden_0/kernel"], pretrained["hidden_0/kernel"])
    imp_mask, imp_start = flat(run.mask(1)), flat(run.params(1, which="rewind"))
    assert set(imp_mask) == {"hidden_0/kernel", "hidden_1/kernel"}  # the pretrained head stays dense
    for layer, keep in imp_mask.items():
        np.testing.assert_array_equal(imp_start[layer], np.where(keep, pretrained[layer], 0))
    # One-shot magnitude pruning of the pretrained weights, as many kept as IMP keeps (global scope).
    baseline = flat(run.mask(1, arm="magnitude_at_rewind"))
    for r in range(2):
        magnitudes = np.concatenate([np.abs(pretrained[layer][r]).ravel() for layer in sorted(imp_mask)])
        kept = int(sum(imp_mask[layer][r].sum() for layer in imp_mask))
        threshold = np.sort(magnitudes)[::-1][kept - 1]
        for layer in imp_mask:
            np.testing.assert_array_equal(baseline[layer][r], np.abs(pretrained[layer][r]) >= threshold)
    start = flat(run.params(1, which="rewind", arm="magnitude_at_rewind"))
    np.testing.assert_array_equal(
        start["hidden_1/kernel"], np.where(baseline["hidden_1/kernel"], pretrained["hidden_1/kernel"], 0)
    )
    reinit = flat(run.params(1, which="rewind", arm="random_reinit"))
    assert not np.array_equal(reinit["hidden_0/kernel"], imp_start["hidden_0/kernel"])
    # The figure names the dense level the fine-tuned pretrained network and says what IMP rewinds to.
    dense_label, title = figures.start_notes(run.config)
    assert title.endswith("(rewound to the pretrained weights)")
    ax = drawing.accuracy_vs_weights(run.table, arms=ARMS, title=title, dense_label=dense_label)
    assert ax.get_legend().get_texts()[0].get_text().startswith("pretrained, fine-tuned (")
    assert ax.get_title() == title
    assert figures.start_notes({"lottery": {"rewind": "0it"}}) == ("dense", None)


def test_rewinding_to_pretrained_weights_needs_them():
    with pytest.raises(UserError, match="model.pretrained names none"):
        tiny_config("lottery", **{"lottery.rewind": "pretrained"})


def test_masks_carried_from_another_run_are_its_masks_and_random_ones_keep_their_densities(source_lottery, tmp_path):
    config = tiny_config(
        "lottery",
        **{
            "lottery.mask_source": source_lottery,
            "lottery.branches": ("random_prune",),
            "train.steps": "1ep",
            "replicates": 2,
            "data_seed": 7,
            "data.synthetic_seed": 3,  # another task
        },
    )
    workdir = str(tmp_path / "carried")
    experiments.run(config, workdir)
    run, found = results.load(workdir), results.load(source_lottery)
    for level in (1, 2):
        theirs, mine = flat(found.mask(level)), flat(run.mask(level))
        for layer in theirs:
            np.testing.assert_array_equal(mine[layer], theirs[layer])
        rand = flat(run.mask(level, arm="random_prune"))
        for layer in theirs:
            assert (rand[layer].sum(axis=(1, 2)) == theirs[layer].sum(axis=(1, 2))).all()
            assert not np.array_equal(rand[layer], theirs[layer])
    rows = run.table[run.table["metric"] == "source_replicate"]
    assert sorted(set(zip(rows["level"], rows["replicate"], rows["value"]))) == [
        (level, r, float(r)) for level in (0, 1, 2) for r in (0, 1)
    ]
    assert run.config["lottery"]["mask_source"] == source_lottery
    assert figures.start_notes(run.config) == ("dense", "Test accuracy vs. weights remaining (masks of lottery)")


def test_masks_of_another_model_or_too_few_levels_are_refused_before_anything_is_written(source_lottery, tmp_path):
    workdir = tmp_path / "refused"
    wider = tiny_config("lottery", **{"lottery.mask_source": source_lottery, "model.options.widths": (32, 24)})
    with pytest.raises(UserError, match="hidden_1/kernel.*the models differ"):
        experiments.run(wider, str(workdir))
    assert not os.path.exists(workdir / "config.json")
    with pytest.raises(UserError, match="has finished levels \\[0, 1, 2\\].*lottery.levels = 3"):
        tiny_config("lottery", **{"lottery.mask_source": source_lottery, "lottery.levels": 3})
    with pytest.raises(UserError, match="cannot choose 'level'"):
        tiny_config("lottery", **{"lottery.mask_source": f"{source_lottery}:level=2"})


@pytest.mark.parametrize(
    "pretrained, fragments",
    [
        ("/nonexistent/run", ["model.pretrained /nonexistent/run does not exist"]),
        ("{empty}", ["holds neither a jaxlth run, an Orbax checkpoint nor a .safetensors file"]),
        ("{source}:depth=3", ["cannot choose 'depth'"]),
        ("{source}:level=4", ["level 4 of arm 'main' is not finished"]),
        ("{source}:replicate=5", ["holds 2 network(s); replicate 5"]),
    ],
)
def test_bad_pretrained_paths_are_one_sentence_and_write_nothing(source, tmp_path, pretrained, fragments):
    empty = tmp_path / "empty"
    empty.mkdir()
    workdir = tmp_path / "work"
    args = ["--config", TINY, "--workdir", str(workdir), "--config.replicates=3"]
    proc = run_cli(*args, f"--config.model.pretrained={pretrained.format(source=source, empty=empty)}")
    assert_clear_error(proc, *fragments)
    assert not os.path.exists(workdir / "config.json")


def test_a_checkpoint_of_another_model_is_refused_and_an_existing_workdir_keeps_every_byte(source, tmp_path):
    workdir = tmp_path / "kept"
    run_cli("--config", TINY, "--workdir", str(workdir), "--config.train.steps=1ep", check=True)
    before = tree_digest(workdir)
    proc = run_cli(
        "--config", TINY, "--workdir", str(workdir), "--config.train.steps=1ep",
        f"--config.model.pretrained={source}", "--config.model.options.widths=(32,8)",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert tree_digest(workdir) == before
    proc = run_cli(
        "--config", TINY, "--workdir", str(tmp_path / "other"), f"--config.model.pretrained={source}",
        "--config.model.options.widths=(32,8)",
    )  # fmt: skip
    assert_clear_error(proc, "params/hidden_1/bias of shape (16,)", "has (8,)")
    assert json.loads((workdir / "config.json").read_text())["model"]["pretrained"] == ""


def test_leaves_named_fresh_are_the_replicates_own_initialisation(source, tmp_path):
    run, config = started(source, tmp_path, "fresh_stem", **{"model.pretrained_fresh": ("^hidden_0/",)})
    init, pretrained = flat(run.params(which="init")), flat(results.load(source).params())
    plain = config.copy_and_resolve_references()
    plain.model.pretrained, plain.model.pretrained_fresh = "", ()
    own = flat(setup_lib.build(plain).init_state().params)
    for leaf in ("hidden_0/kernel", "hidden_0/bias"):
        np.testing.assert_array_equal(init[leaf], own[leaf])
    for leaf in ("hidden_1/kernel", "output/kernel"):  # the head's shape fits: auto keeps it
        np.testing.assert_array_equal(init[leaf], pretrained[leaf])
    assert "params/hidden_0/kernel" in run.pretrained["fresh"]


def test_a_safetensors_file_starts_every_replicate_and_bad_files_are_one_sentence(source, tmp_path):
    one = results.load(source).network(replicate=1)  # one network, no replicate axis
    path = str(tmp_path / "net.safetensors")
    weights.write_safetensors(path, weights.from_network(one, "jaxlth"))
    run, _ = started(path, tmp_path, "from_file", **{"model.pretrained_head": "keep"})
    init, theirs = flat(run.params(which="init")), flat(one["params"])
    for leaf, value in theirs.items():
        for r in range(2):
            np.testing.assert_array_equal(init[leaf][r], value)
    assert run.pretrained["kind"] == "safetensors" and run.pretrained["source_replicates"] == [0, 0]
    bad = str(tmp_path / "bad.safetensors")
    weights.write_safetensors(bad, {"encoder.weird.weight": np.zeros((2, 2), np.float32)})
    workdir = tmp_path / "refused"
    for args, fragment in (
        ([f"--config.model.pretrained={bad}"], "encoder.weird.weight"),
        ([f"--config.model.pretrained={path}", "--config.model.pretrained_format=onnx"], "pretrained_format 'onnx'"),
        ([f"--config.model.pretrained={path}", "--config.model.options.widths=(32,8)"], "hidden_1"),
    ):
        assert_clear_error(run_cli("--config", TINY, "--workdir", str(workdir), *args), fragment)
        assert not workdir.exists()


def test_every_stage_of_the_transfer_recipe_validates():
    from jaxlth import config as config_lib

    recipe = os.path.join(os.path.dirname(TINY), "..", "..", "configs", "transfer", "fashion_mnist.py")
    for stage in ("pretrain", "rotation", "transfer", "scratch", "carried"):
        for arg in (stage, f"{stage},vit"):
            config = config_lib.from_file(f"{recipe}:{arg}", **{"model.pretrained": "runs/task_a:level=0"})
            config_lib.validate(config)
            assert config.data.classes == ((0, 1, 2, 3, 4) if stage in ("pretrain", "rotation") else (5, 6, 7, 8, 9))


def test_the_resnet50_recipe_loads_a_torchvision_file_with_its_own_stem_and_head(tmp_path):
    """The CV-tickets setting end to end up to the start: torchvision names, a 7x7 checkpoint stem
    replaced by the recipe's fresh 3x3 one (model.pretrained_fresh), a fresh 10-way head."""
    import dataclasses

    from jaxlth import config as config_lib
    from jaxlth import models
    from jaxlth.experiments import pretrained_source

    imagenet = models.get_model("resnet50", 7, width=4)  # the public checkpoint's layout (7x7 stem, 7 classes)
    network = drawn_variables(imagenet, np.zeros((1, 32, 32, 3), np.float32), seed=3, train=False)
    path = str(tmp_path / "resnet50.safetensors")
    weights.write_safetensors(path, weights.from_network(dict(network), "torchvision_resnet"))
    recipe = os.path.join(os.path.dirname(TINY), "..", "..", "configs", "resnet50_pretrained_cifar10.py")
    overrides = {"model.pretrained": path, "model.options.width": 4, "replicates": 2, "data.name": "synthetic"}
    config = config_lib.from_file(f"{recipe}:lottery", **overrides, **{"data.synthetic_image_shape": (32, 32, 3)})
    setup = setup_lib.build(config)
    setup = dataclasses.replace(setup, pretrained=pretrained_source.read(config, setup))
    start, theirs = setup.init_state(), flat(network["params"])
    params, stats = flat(start.params), flat(start.batch_stats)
    assert params["stem_conv/kernel"].shape[1:] == (3, 3, 3, 4) and theirs["stem_conv/kernel"].shape == (7, 7, 3, 4)
    for leaf in ("stem_bn/scale", "stage0_block0/conv1/kernel", "stage3_block2/conv3/kernel"):
        for r in range(2):
            np.testing.assert_array_equal(params[leaf][r], theirs[leaf])
    np.testing.assert_array_equal(
        stats["stage2_block1/bn2/mean"][1], flat(network["batch_stats"])["stage2_block1/bn2/mean"]
    )
    assert params["output/kernel"].shape[1:] == (16 * 4 * 2, 10)  # the 10-way head is new ...
    assert not np.array_equal(params["output/kernel"][0], params["output/kernel"][1])  # ... and each replicate's own
    prunable = flat(setup.dense_mask(start.params))
    assert "stem_conv/kernel" not in prunable and "output/kernel" not in prunable
    assert "stage0_block0/shortcut_conv/kernel" in prunable
