"""Streamed datasets (ArrayRecord files read through Grain): the batch at step s is a function of
the data key and s, resumes mid-epoch, shards disjointly over processes, and a run on it resumes
bitwise after a kill; the ImageNet recipe runs on a small ImageNet-shaped dataset."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxlth import checkpoint
from jaxlth.data import batching, records_io, streaming
from jaxlth.errors import UserError
from tests.conftest import ROOT, TINY, checkpoint_steps, run_cli, start_and_kill

SIZE = 24  # the crop the network sees


def write_images(folder, name="tiny_images", train=96, test=40, classes=4, augmentation="imagenet", shards=2):
    """A streamed dataset of random images of several sizes (labels: 0 .. classes - 1)."""
    generator = np.random.default_rng(0)

    def split(n):
        images = [
            generator.integers(
                0, 256, (int(generator.integers(28, 40)), int(generator.integers(28, 40)), 3), dtype=np.uint8
            )
            for _ in range(n)
        ]
        return images, (np.arange(n) % classes).astype(np.int32)

    records_io.write_dataset(
        str(folder),
        name,
        {"train": split(train), "test": split(test)},
        classes,
        augmentation=augmentation,
        shards=shards,
    )
    return str(folder)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("stream") / "data")


def stream_of(folder, batch_size=8):
    dataset = streaming.open_dataset(folder, "tiny_images", SIZE)
    return streaming.Stream(dataset, batch_size, dataset.num_train // batch_size, eval_batch_size=16, threads=4)


def keys(*seeds):
    return [tuple(int(v) for v in np.asarray(jax.random.PRNGKey(s))) for s in seeds]


def test_records_round_trip(tmp_path):
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    decoded, label = records_io.read_example(records_io.encode(image, 3), channels=3)
    np.testing.assert_array_equal(decoded, image)  # PNG is lossless
    assert label == 3


def test_dataset_folder_is_described(folder):
    dataset = streaming.open_dataset(folder, "tiny_images", SIZE)
    assert (dataset.num_train, dataset.num_test, dataset.num_classes) == (96, 40, 4)
    assert dataset.image_shape == (SIZE, SIZE, 3) and dataset.mean == streaming.IMAGENET_STATS[0]
    with pytest.raises(UserError, match="holds 'tiny_images', not data.name='imagenet2012'"):
        streaming.open_dataset(folder, "imagenet2012", SIZE)


def test_batch_is_a_function_of_key_and_step(folder):
    a, b = stream_of(folder), stream_of(folder)
    (key,) = keys(0)
    for step in (0, 5, 13):
        x1, y1 = a.batch(key, step)
        x2, y2 = b.batch(key, step)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
        assert x1.shape == (8, SIZE, SIZE, 3) and x1.dtype == np.uint8
    assert not np.array_equal(a.batch(key, 1)[0], a.batch(keys(1)[0], 1)[0])  # another replicate, another batch


def test_each_epoch_visits_every_record_once_in_the_device_order(folder):
    stream = stream_of(folder)
    (key,) = keys(3)
    for epoch in (0, 1):
        order = stream.order(key, epoch)
        np.testing.assert_array_equal(
            order, np.asarray(batching.epoch_permutation(np.asarray(key, np.uint32), epoch, 96))
        )
        assert sorted(order.tolist()) == list(range(96))
    labels = np.concatenate([stream.batch(key, s)[1] for s in range(12)])  # steps 0..11: one epoch
    np.testing.assert_array_equal(np.sort(labels), np.sort(np.arange(96) % 4))


def test_grain_reader_equals_direct_reads_and_resumes_mid_epoch(folder):
    stream, two = stream_of(folder), keys(0, 1)
    images, labels = stream.steps(two, 0, 7)  # epoch 0 and the first step of epoch 1
    again_images, again_labels = stream.steps(two, 7, 3)  # goes on where it stopped
    resumed_images, resumed_labels = stream_of(folder).steps(two, 5, 5)  # a fresh reader from step 5
    assert images.shape == (7, 2, 8, SIZE, SIZE, 3) and labels.shape == (7, 2, 8)
    for step in range(10):
        for r, key in enumerate(two):
            x, y = stream.batch(key, step)
            got = (images[step], labels[step]) if step < 7 else (again_images[step - 7], again_labels[step - 7])
            np.testing.assert_array_equal(got[0][r], x)
            np.testing.assert_array_equal(got[1][r], y)
            if step >= 5:
                np.testing.assert_array_equal(resumed_images[step - 5][r], x)
    assert streaming.Stream.iterator_state(7) == {"next_index": 7}


def test_processes_read_disjoint_replicates(folder):
    """Each process reads its own replicates' batches: the two halves make up the whole."""
    four = keys(0, 1, 2, 3)
    whole = stream_of(folder).steps(four, 2, 2)[0]
    first, second = stream_of(folder).steps(four[:2], 2, 2)[0], stream_of(folder).steps(four[2:], 2, 2)[0]
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), whole)


def test_imagenet_views(folder):
    image = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert streaming.eval_view(image, 224, "imagenet").shape == (224, 224, 3)
    crops = [streaming.train_view(image, 224, "imagenet", np.random.default_rng(s)) for s in range(4)]
    assert all(c.shape == (224, 224, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) == 4  # random crops differ
    same = streaming.train_view(image, 224, "imagenet", np.random.default_rng(0))
    np.testing.assert_array_equal(same, crops[0])


def test_a_streamed_chunk_holds_its_batches_on_the_device(folder):
    """The memory a streamed run needs grows with data.stream_chunk_steps: a chunk's host batches are
    one argument of its program (what jaxlth.experiments.replicates counts)."""
    from jaxlth.training import memory
    from jaxlth.training import setup as setup_lib
    from tests.conftest import tiny_config

    def per_network(chunk):
        config = tiny_config(
            **{
                "data.name": "tiny_images",
                "data.source": "array_record",
                "data.dir": folder,
                "data.image_size": SIZE,
                "data.stream_chunk_steps": chunk,
            }
        )
        setup = setup_lib.build(config)
        return memory.measure(setup.program, setup.data, num_steps=chunk).training.per_network

    batch = 32 * SIZE * SIZE * 3  # one step's uint8 images (the tiny config's batch of 32)
    assert per_network(8) - per_network(4) >= 4 * batch


def stream_flags(folder) -> list[str]:
    return [
        "--config.data.name=tiny_images",
        "--config.data.source=array_record",
        f"--config.data.dir={folder}",
        f"--config.data.image_size={SIZE}",
        "--config.data.stream_chunk_steps=4",
        "--config.replicates=2",
        "--config.lottery.levels=1",
    ]


@pytest.mark.slow
def test_a_streamed_lottery_run_resumes_bitwise_after_a_kill(folder, tmp_path):
    args = ["--config", f"{TINY}:lottery", *stream_flags(folder)]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_cli(*args, "--workdir", str(whole), check=True)
    level = killed / "checkpoints" / "imp" / "level_01"
    start_and_kill([*args, "--workdir", str(killed)], lambda: checkpoint_steps(level))
    assert not (killed / "finished.json").exists()
    run_cli(*args, "--workdir", str(killed), check=True)
    assert open(whole / "results.csv").read() == open(killed / "results.csv").read()
    # every checkpoint records where the Grain iterator stands: the next step
    checkpoints = checkpoint.Checkpoints(str(level))
    for step in checkpoint_steps(level):
        meta = checkpoints.meta(step)
        assert meta["data_iterator"] == {"next_index": step} and meta["step"] == step


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--config", f"{TINY}:scores"],
            "the scores experiment needs the whole dataset in memory, and tiny_images is "
            "streamed; streamed datasets serve train, lottery",
        ),
        (
            ["--config", f"{TINY}:lottery", "--config.lottery.average_copies=2"],
            "lottery.average_copies > 1 needs the whole dataset in memory, and tiny_images is streamed",
        ),
        (
            ["--config", TINY, "--config.data.subsample_fraction=0.5"],
            "data.subsample_fraction is not available for a streamed dataset (tiny_images); leave it at 1.0",
        ),
        (["--config", TINY, "--config.data.dir=/nonexistent"], "/nonexistent holds no dataset.json"),
    ],
)
def test_what_a_stream_cannot_serve_is_one_sentence(folder, tmp_path, flags, message):
    chosen = [f for f in stream_flags(folder) if not any(f.startswith(g.split("=")[0] + "=") for g in flags)]
    proc = run_cli(*flags, *chosen, "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"jaxlth: error: {message}"), proc.stderr
    assert not (tmp_path / "w" / "results.csv").exists()


@pytest.mark.slow
def test_the_imagenet_recipe_runs_on_an_imagenet_shaped_folder(tmp_path):
    """configs/resnet50_imagenet.py:lottery end to end (ResNet-50 of width 4, 32-pixel crops, 2 steps a
    level): ImageNet's folder, augmentation and 1000 classes."""
    data = write_images(tmp_path / "imagenet2012", name="imagenet2012", train=16, test=8, classes=1000, shards=1)
    proc = run_cli(
        "--config",
        os.path.join(ROOT, "configs", "resnet50_imagenet.py:lottery"),
        "--workdir",
        str(tmp_path / "w"),
        f"--config.data.dir={data}",
        "--config.data.image_size=32",
        "--config.model.options.width=4",
        "--config.train.batch_size=8",
        "--config.train.steps=2it",
        "--config.train.warmup=1it",
        "--config.train.milestones=1it",
        "--config.lottery.rewind=1it",
        "--config.lottery.levels=1",
        "--config.lottery.branches=()",
        "--config.eval_every=2it",
        "--config.checkpoint_every=2it",
        "--config.eval_batch_size=8",
        check=True,
        timeout=600,
    )
    assert "resnet50 on imagenet2012 (16 train / 8 test, streamed from" in proc.stdout
    table = jaxlth_results(tmp_path / "w")
    assert sorted(table["level"].unique()) == [0, 1]
    finals = table.query("split == 'test' and step == 2 and metric == 'accuracy'")
    assert sorted(finals["level"]) == [0, 1]  # both levels trained to the end


def jaxlth_results(workdir):
    from jaxlth import results

    return results.load(str(workdir)).table


@pytest.mark.slow
def test_one_replicate_splits_its_batch_over_the_processes(folder, tmp_path):
    """One replicate on two processes of one device each: each process decodes half of every batch,
    XLA all-reduces the gradients and BatchNorm statistics; the run is the one-device run up to the
    order of the sums."""
    from tests.test_processes import finish, free_port

    flags = [*stream_flags(folder), "--config.replicates=1"]
    run_cli("--config", TINY, *flags, "--workdir", str(tmp_path / "one"), check=True, env={"JAX_PLATFORMS": "cpu"})
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxlth.main",
                "--config",
                TINY,
                *flags,
                "--workdir",
                str(tmp_path / "two"),
                "--distributed",
                f"--coordinator=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            cwd=ROOT,
            text=True,
            env=dict(os.environ, JAX_PLATFORMS="cpu"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outcomes = finish(procs)
    assert all(rc == 0 for rc, _, _ in outcomes), outcomes[0][2]
    assert "2 x cpu in 2 processes, each batch split over 2 devices" in outcomes[0][1]
    one, two = (jaxlth_results(tmp_path / w) for w in ("one", "two"))
    assert len(one) == len(two) > 0
    np.testing.assert_allclose(two["value"], one["value"], rtol=1e-5, atol=1e-6)
