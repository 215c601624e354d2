"""data.classes and data.task: a dataset's classes kept and relabelled, and the rotation pretext task."""

import os

import numpy as np
import pytest

from jaxlth.data import default_config, load_dataset, tasks
from jaxlth.data.dataset import Dataset
from jaxlth.errors import UserError
from tests.conftest import FASHION_MNIST_DIR, TINY, run_cli
from tests.test_cli import assert_clear_error


def small(num_classes=5, shape=(4, 4, 1), n=40, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        name="toy",
        train_images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        train_labels=np.arange(n, dtype=np.int32) % num_classes,
        test_images=rng.integers(0, 256, (n // 2, *shape), dtype=np.uint8),
        test_labels=(np.arange(n // 2, dtype=np.int32) * 3) % num_classes,
        num_classes=num_classes,
        mean=(0.5,),
        std=(0.25,),
    )


def test_kept_classes_are_relabelled_in_the_order_listed_and_keep_their_order_and_statistics():
    data = small()
    kept = tasks.keep_classes(data, (3, 1))
    for split in ("train", "test"):
        labels = getattr(data, f"{split}_labels")
        rows = np.flatnonzero((labels == 3) | (labels == 1))
        np.testing.assert_array_equal(getattr(kept, f"{split}_images"), getattr(data, f"{split}_images")[rows])
        np.testing.assert_array_equal(getattr(kept, f"{split}_labels"), np.where(labels[rows] == 3, 0, 1))
    assert kept.num_classes == 2 and (kept.mean, kept.std) == (data.mean, data.std)
    assert "classes (3, 1) as 0..1" in kept.source
    assert tasks.keep_classes(data, ()) is data


def test_the_rotation_task_holds_each_image_in_four_turns_labelled_by_the_turn():
    data = small(shape=(3, 3, 2))
    task = tasks.rotation_task(data)
    assert task.num_train == 4 * data.num_train and task.num_test == 4 * data.num_test and task.num_classes == 4
    np.testing.assert_array_equal(task.train_labels[:8], [0, 1, 2, 3, 0, 1, 2, 3])
    image = data.train_images[1]
    np.testing.assert_array_equal(task.train_images[4], image)
    # one quarter turn counter-clockwise: the top row becomes the left column, read bottom-up
    np.testing.assert_array_equal(task.train_images[5][:, 0], image[0][::-1])
    np.testing.assert_array_equal(task.train_images[7], np.rot90(image, 3, axes=(0, 1)))
    assert np.bincount(task.test_labels).tolist() == [data.num_test] * 4


def test_rectangles_and_sequences_are_refused_by_the_rotation_task():
    with pytest.raises(UserError, match="needs square images"):
        tasks.rotation_task(small(shape=(4, 6, 1)))
    cfg = default_config()
    cfg.name, cfg.task = "mnist1d", "rotation"
    with pytest.raises(UserError, match="mnist1d holds 1-D sequences"):
        tasks.check(cfg, streamed=False)


@pytest.mark.parametrize(
    "classes, task, fragment",
    [
        ((4,), "classes", "keeps 1 class; a task needs at least 2"),
        ((3, 10), "classes", "names class 10, and the dataset's classes are 0 to 9"),
        ((2, 2), "classes", "lists class 2 twice"),
        ((1.5, 2), "classes", "data.classes must be a tuple of class ids"),
        ((), "jigsaw", "unknown data.task 'jigsaw'"),
    ],
)
def test_impossible_tasks_are_refused_before_any_data_is_read(classes, task, fragment):
    cfg = default_config()
    cfg.name, cfg.dir = "synthetic", "/no/such/folder"
    cfg.classes, cfg.task = classes, task
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(cfg)


def test_classes_then_rotation_on_synthetic_data_through_load_dataset():
    cfg = default_config()
    cfg.name, cfg.classes, cfg.task = "synthetic", (7, 2, 5), "rotation"
    whole = load_dataset(_synthetic())
    posed = load_dataset(cfg)
    kept = np.isin(whole.train_labels, (7, 2, 5))
    assert posed.num_classes == 4 and posed.num_train == 4 * int(kept.sum())
    np.testing.assert_array_equal(posed.train_images[::4], whole.train_images[kept])


def _synthetic():
    cfg = default_config()
    cfg.name = "synthetic"
    return cfg


def test_a_bad_class_list_on_the_command_line_is_one_sentence_and_writes_nothing(tmp_path):
    proc = run_cli("--config", TINY, "--workdir", str(tmp_path / "run"), "--config.data.classes=(0,12)")
    assert_clear_error(proc, "data.classes names class 12")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"real Fashion-MNIST is not installed in {FASHION_MNIST_DIR}",
)
def test_fashion_mnist_halves_hold_half_of_each_split():
    cfg = default_config()
    cfg.name, cfg.dir, cfg.classes = "fashion_mnist", FASHION_MNIST_DIR, (5, 6, 7, 8, 9)
    half = load_dataset(cfg)
    assert (half.num_train, half.num_test, half.num_classes) == (30_000, 5_000, 5)
    assert np.bincount(half.train_labels).tolist() == [6_000] * 5
