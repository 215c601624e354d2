"""``data.name = "distilled"``: a distill run's synthetic set as the training set of any run (issue 31).

The distill runs are fabricated (:func:`tests.conftest.fabricate_distill_run`) in the layout the
distill experiment leaves: the tiny config's ``config.json`` (synthetic 28x28 images, 10 classes) and
the artifact ``artifacts/distilled`` of 2 sets of 40 images (4 per class).
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlth import data, experiments, results, workdir
from jaxlth.data import batching, selection
from jaxlth.errors import UserError
from jaxlth.training import functions as fn
from jaxlth.training import objectives
from jaxlth.training import setup as setup_lib
from tests.conftest import (
    TINY,
    assert_same_rows,
    checkpoint_steps,
    fabricate_distill_run,
    run_cli,
    start_and_kill,
    tiny_config,
)

SETS, IMAGES, BATCH = 2, 40, 8  # 5 steps per epoch


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill") / "hard"
    return str(folder), fabricate_distill_run(folder, sets=SETS)


@pytest.fixture(scope="module")
def soft(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill") / "soft"
    return str(folder), fabricate_distill_run(folder, sets=SETS, soft=True, seed=1)


def on_distilled(folder: str, arg: str | None = None, **changes):
    """The tiny config ``arg`` training on the distill run in ``folder``."""
    fields = {"data.name": "distilled", "data.distilled_workdir": folder, "train.batch_size": BATCH}
    return tiny_config(arg, **{**fields, **changes})


def test_the_training_split_is_the_chosen_set_and_everything_else_the_real_dataset(hard):
    folder, arrays = hard
    real = data.load_dataset(tiny_config().data)
    for r in range(SETS):
        ds = data.load_dataset(on_distilled(folder, **{"data.distilled_replicate": r}).data)
        assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int32
        np.testing.assert_array_equal(ds.train_images, arrays["images"][r])
        np.testing.assert_array_equal(ds.train_labels, arrays["labels"][r])
        np.testing.assert_array_equal(ds.test_images, real.test_images)
        np.testing.assert_array_equal(ds.test_labels, real.test_labels)
        same = ("name", "num_classes", "mean", "std", "pixel_scale", "augmentation", "image_shape")
        assert [getattr(ds, f) for f in same] == [getattr(real, f) for f in same]
        assert f"distilled set {r} of {SETS} ({IMAGES} images, class labels) from {folder}" in ds.source


def test_soft_labels_train_with_the_soft_cross_entropy_of_their_softmax(soft):
    folder, arrays = soft
    setup = setup_lib.build(on_distilled(folder, **{"data.distilled_replicate": 1, "replicates": 2}))
    label_logits = arrays["labels"][1]
    targets = np.asarray(jax.nn.softmax(label_logits, axis=-1))
    assert setup.dataset.train_labels.shape == (IMAGES, 10)
    np.testing.assert_array_equal(setup.dataset.train_labels, targets)
    state, program, spec = setup.init_state(), setup.program, setup.program.spec
    mask = setup.dense_mask(state.params)
    params = jax.tree.map(lambda p: np.asarray(p[0]), state.params)  # replicate 0, before its first step
    key = state.data_key[0]

    # the first step's loss: optax's soft cross-entropy against softmax(label logits) of its batch
    _, (loss, accuracy) = program.train_chunk(state, mask, setup.data, 0, num_steps=1)
    idx = batching.indices_at(key, jnp.int32(0), IMAGES, BATCH)
    out = fn.logits(program.model, params, {}, fn.preprocess(arrays["images"][1][np.asarray(idx)], spec), True)[0]
    expected = jnp.mean(optax.softmax_cross_entropy(out, jax.nn.softmax(label_logits[np.asarray(idx)], axis=-1)))
    np.testing.assert_allclose(np.asarray(loss)[0], expected, rtol=1e-6)
    right = np.argmax(out, -1) == np.argmax(label_logits[np.asarray(idx)], -1)
    np.testing.assert_allclose(np.asarray(accuracy)[0], right.mean(), rtol=1e-6)

    # the training split's evaluation: the same loss, and accuracy against the argmax of the targets
    start = setup.init_state()
    loss, accuracy = program.evaluate_data(start.params, start.batch_stats, setup.data, "train")
    out = fn.logits(program.model, params, {}, fn.preprocess(arrays["images"][1], spec))[0]
    np.testing.assert_allclose(np.asarray(loss)[0], np.mean(optax.softmax_cross_entropy(out, targets)), rtol=1e-5)
    assert np.asarray(accuracy)[0] == np.mean(np.argmax(out, -1) == np.argmax(targets, -1))


def test_the_classify_objective_takes_classes_or_soft_targets():
    out = jax.random.normal(jax.random.key(0), (6, 4))
    classes = jnp.array([0, 1, 2, 3, 1, 0])
    soft = jax.nn.one_hot(classes, 4) * 0.7 + 0.075
    np.testing.assert_array_equal(
        objectives.per_example("classify", out, classes), optax.softmax_cross_entropy_with_integer_labels(out, classes)
    )
    np.testing.assert_array_equal(objectives.per_example("classify", out, soft), optax.softmax_cross_entropy(out, soft))
    np.testing.assert_array_equal(
        objectives.correct("classify", out, soft), objectives.correct("classify", out, classes)
    )


@pytest.mark.parametrize("augmentation", ["auto", "cifar"])
def test_an_epoch_batches_every_synthetic_image_once_augmented_only_when_asked(hard, augmentation):
    folder, arrays = hard
    setup = setup_lib.build(on_distilled(folder, **{"data.augmentation": augmentation}))
    spec = setup.program.spec
    assert (spec.num_train, spec.steps_per_epoch) == (IMAGES, IMAGES // BATCH)
    assert spec.augmentation == ("none" if augmentation == "auto" else "cifar")
    key, epoch = setup.data_keys()[0], 2
    perms = batching.chunk_permutations(key, jnp.int32(epoch), 1, IMAGES)
    seen = []
    for step in range(epoch * spec.steps_per_epoch, (epoch + 1) * spec.steps_per_epoch):
        x, y, idx = fn.train_batch(
            setup.data.train_images, setup.data.train_labels, key, perms, epoch, jnp.int32(step), spec
        )
        idx = np.asarray(idx)
        np.testing.assert_array_equal(setup.data.train_images[idx], arrays["images"][0][idx])
        plain = fn.preprocess(setup.data.train_images[idx], spec)
        np.testing.assert_array_equal(y, arrays["labels"][0][idx])
        if augmentation == "auto":
            np.testing.assert_array_equal(x, plain)
        else:  # CIFAR's crop and flip, drawn from the step's key
            assert not np.array_equal(x, plain)
            cropped = fn.augmented(setup.data.train_images[idx], batching.augment_key(key, jnp.int32(step)), spec)
            np.testing.assert_array_equal(x, cropped)
        seen += idx.tolist()
    assert sorted(seen) == list(range(IMAGES))


def test_class_balanced_choices_group_soft_labels_by_their_argmax_class(soft):
    folder, arrays = soft
    labels = np.asarray(data.load_dataset(on_distilled(folder).data).train_labels)
    spec = selection.default_config()
    spec.keep, spec.size, spec.class_balanced = "random", 10, True
    kept = selection.choose(spec, labels, None)
    classes = np.argmax(arrays["labels"][0], -1)
    counts = np.bincount(classes[kept], minlength=10)[np.unique(classes)]
    assert counts.sum() == 10 and counts.max() - counts.min() <= 1


def test_a_killed_run_on_distilled_data_resumes_bitwise_and_records_its_source(tmp_path, hard, capsys):
    folder, _ = hard
    changes = {"train.steps": "20ep", "replicates": 2, "checkpoint_every": "4it", "eval_every": "7it"}
    reference = tmp_path / "reference"
    experiments.run(on_distilled(folder, **changes), str(reference))
    assert f"distilled set 0 of {SETS} ({IMAGES} images, class labels) from {folder}" in capsys.readouterr().out
    saved = json.loads((reference / "config.json").read_text())["data"]
    assert (saved["name"], saved["distilled_workdir"], saved["distilled_replicate"]) == ("distilled", folder, 0)

    args = ["--config", TINY, "--config.data.name=distilled", f"--config.data.distilled_workdir={folder}"]
    args += [f"--config.train.batch_size={BATCH}", *(f"--config.{k}={v}" for k, v in changes.items())]
    killed = tmp_path / "killed"
    start_and_kill([*args, "--workdir", str(killed)], lambda: checkpoint_steps(killed / "checkpoints")[-1:] >= [8])
    assert checkpoint_steps(killed / "checkpoints")[-1] < 100, "the run ended before it was killed"
    run_cli(*args, "--workdir", str(killed), check=True)
    a, b = results.load(str(reference)), results.load(str(killed))
    for x, y in zip(jax.tree.leaves(a.params()), jax.tree.leaves(b.params())):
        np.testing.assert_array_equal(x, y)
    assert_same_rows(a.table, b.table, ["step", "replicate", "split", "metric", "value"])


def test_data_name_distilled_without_a_workdir_is_one_sentence_on_the_command_line(tmp_path):
    proc = run_cli("--config", TINY, "--config.data.name=distilled", "--workdir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("jaxlth: error:")]
    assert len(errors) == 1 and "name that run's workdir in data.distilled_workdir" in errors[0], proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_bad_distilled_inputs_are_one_sentence_each(tmp_path, hard, soft):
    folder, _ = hard
    unfinished = tmp_path / "unfinished"
    workdir.claim(str(unfinished), tiny_config(), lambda saved, current: [])
    refused_by_the_config = [
        ({"data.distilled_workdir": str(tmp_path / "nothing")}, "holds no jaxlth run (no config.json)"),
        ({"data.distilled_workdir": str(unfinished)}, "holds no finished 'distilled' artifact"),
        ({"data.distilled_replicate": -1}, "data.distilled_replicate must be a set's index"),
        ({"data.classes": (0, 1)}, "data.classes is the distill run's choice"),
        ({"data.augmentation": "mixup"}, "unknown data.augmentation 'mixup'"),
    ]
    for changes, fragment in refused_by_the_config:
        with pytest.raises(UserError, match=re.escape(fragment)) as refusal:
            on_distilled(folder, **changes)
        assert "\n" not in str(refusal.value)
    with pytest.raises(UserError, match=r"data.distilled_replicate=2, but .* holds 2 synthetic set\(s\) \(0 to 1\)"):
        data.load_dataset(on_distilled(folder, **{"data.distilled_replicate": 2}).data)
    with pytest.raises(UserError, match=r"train.batch_size 64 is larger than the training set \(40 examples\)"):
        setup_lib.build(on_distilled(folder, **{"train.batch_size": 64}))
    with pytest.raises(UserError, match="draws class labels, and this training set has soft labels"):
        data.load_dataset(on_distilled(soft[0], **{"data.random_labels_fraction": 0.5}).data)
    distilled_twice = tmp_path / "twice"
    workdir.claim(str(distilled_twice), on_distilled(folder), lambda saved, current: [])
    with pytest.raises(UserError, match="was itself trained on distilled data"):
        on_distilled(str(distilled_twice))
