"""Dataset sources, auto-resolution, subsets and label noise (all offline)."""

import functools
import gzip
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxlth import data
from jaxlth.data import sources
from jaxlth.data.dataset import Dataset
from jaxlth.data.sampling import randomize_labels, subsample
from jaxlth.data.sources import cifar_pickle, idx, mnist1d_source, places, synthetic, tfds_source
from jaxlth.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


def _cfg(**fields):
    cfg = data.default_config()
    cfg.update(fields)
    return cfg


def _write_mnist_dir(directory, n_train=20, n_test=10, gz=True, seed=0):
    """A tiny MNIST-style folder; returns the four arrays written (images without channel)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        idx.write_idx(os.path.join(directory, stem + (".gz" if gz else "")), array)
    return arrays


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """No $JAXLTH_DATA_DIR, Debian folders pointing nowhere, TFDS reported absent."""
    monkeypatch.delenv("JAXLTH_DATA_DIR", raising=False)
    monkeypatch.setattr(
        places,
        "DEBIAN_DIRS",
        {"fashion_mnist": str(tmp_path / "debian" / "fashion-mnist"), "mnist": str(tmp_path / "debian" / "mnist")},
    )
    monkeypatch.setattr(tfds_source, "tfds_installed", lambda: False)
    return tmp_path


# ----------------------------------------------------------------------------- config


def test_default_config_fields():
    cfg = data.default_config()
    assert set(cfg.keys()) == {
        "name",
        "source",
        "dir",
        "tfds_data_dir",
        "download",
        "subsample_fraction",
        "random_labels_fraction",
        "subset_seed",
        "pad_to",
        "classes",
        "task",
        "synthetic_train_size",
        "synthetic_test_size",
        "synthetic_image_shape",
        "synthetic_num_classes",
        "synthetic_seed",
        *("distilled_workdir", "distilled_replicate", "augmentation"),  # jaxlth/data/distilled.py, augment.py
        "subset",
        "image_size",
        "stream_threads",
        "stream_chunk_steps",
        *("vocab", "lowercase", "max_length", "mlm_probability", "corpus", "text_cache"),  # text (jaxlth/data/text)
    }
    assert cfg.name == "fashion_mnist" and cfg.source == "auto"
    assert (cfg.synthetic_train_size, cfg.synthetic_test_size) == (512, 256)
    assert tuple(cfg.synthetic_image_shape) == (28, 28, 1) and cfg.synthetic_num_classes == 10


def test_unknown_name_and_mismatched_source():
    with pytest.raises(UserError, match="Unknown data.name"):
        data.load_dataset(_cfg(name="svhn"))
    with pytest.raises(UserError, match="is streamed from ArrayRecord files while training; this needs the whole"):
        data.load_dataset(_cfg(name="imagenet2012"))  # streamed (jaxlth.data.streaming), never loaded whole
    with pytest.raises(UserError, match="Unknown data.source"):
        data.load_dataset(_cfg(source="http"))
    with pytest.raises(UserError, match="cannot serve"):
        data.load_dataset(_cfg(name="cifar10", source="idx"))


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    idx.write_idx(str(tmp_path / ("img" + suffix)), images)
    idx.write_idx(str(tmp_path / ("lab" + suffix)), labels)
    np.testing.assert_array_equal(idx.read_idx(str(tmp_path / ("img" + suffix)), ndim=3), images)
    np.testing.assert_array_equal(idx.read_idx(str(tmp_path / ("lab" + suffix))), labels)
    if suffix:
        with gzip.open(tmp_path / "img.gz", "rb") as f:
            assert f.read(4) == b"\x00\x00\x08\x03"


def test_a_large_gzip_idx_file_is_decoded_once_and_again_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "DECODED_MIN_BYTES", 64)  # these test files count as large
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    idx.write_idx(path, images)
    np.testing.assert_array_equal(idx.read_idx(path, ndim=3), images)
    (copy,) = os.listdir(idx.decoded_dir())
    np.testing.assert_array_equal(np.load(os.path.join(idx.decoded_dir(), copy)), images)

    monkeypatch.setattr(idx, "_read_idx_file", None)  # read again: from the copy, the file not decoded
    again = idx.read_idx(path, ndim=3)
    np.testing.assert_array_equal(again, images)
    again[0, 0, 0] ^= 1  # writable, like a decoded array
    monkeypatch.undo()
    monkeypatch.setenv("JAXLTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "DECODED_MIN_BYTES", 64)

    changed = images[::-1].copy()
    idx.write_idx(path, changed)
    os.utime(path, ns=(1, 1))  # another modification time: the old copy no longer answers
    np.testing.assert_array_equal(idx.read_idx(path, ndim=3), changed)
    assert len(os.listdir(idx.decoded_dir())) == 2
    with pytest.raises(UserError, match="3-D array but a 1-D"):
        idx.read_idx(path, ndim=1)  # a copy of another shape is not taken for the file
    for name in os.listdir(idx.decoded_dir()):
        with open(os.path.join(idx.decoded_dir(), name), "wb") as f:
            f.write(b"damaged")
    np.testing.assert_array_equal(idx.read_idx(path, ndim=3), changed)  # a damaged copy: decoded again


def test_idx_corruption_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    idx.write_idx(str(path), np.zeros((3, 28, 28), np.uint8))
    raw = bytearray(path.read_bytes())
    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes(b"\x00\x00\x0d\x03" + bytes(raw[4:]))
    with pytest.raises(UserError, match="bad-magic.*magic number"):
        idx.read_idx(str(bad_magic))
    truncated = tmp_path / "truncated"
    truncated.write_bytes(bytes(raw[:-5]))
    with pytest.raises(UserError, match="truncated.*truncated or corrupt"):
        idx.read_idx(str(truncated))
    with pytest.raises(UserError, match="3-D array but a 1-D"):
        idx.read_idx(str(path), ndim=1)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(bytes(raw))[:-20])
    with pytest.raises(UserError, match="broken.gz"):
        idx.read_idx(str(broken_gz))


def test_load_idx_folder_through_load_dataset(tmp_path, no_data_env):
    arrays = _write_mnist_dir(str(tmp_path / "m"), gz=False)
    ds = data.load_dataset(_cfg(name="mnist", dir=str(tmp_path / "m")))
    assert ds.train_images.shape == (20, 28, 28, 1) and ds.train_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int32 and ds.test_images.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(ds.train_images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert (ds.mean, ds.std) == ((0.1307,), (0.3081,))
    assert ds.num_classes == 10 and ds.augmentation == "none" and ds.pixel_scale == 255.0
    assert ds.source == str(tmp_path / "m")


# ----------------------------------------------------------------------------- resolution


def test_auto_resolution_order(tmp_path, no_data_env, monkeypatch):
    dir_ = str(tmp_path / "cfgdir")
    env = tmp_path / "env"
    debian = places.DEBIAN_DIRS["fashion_mnist"]
    _write_mnist_dir(debian, seed=3)
    assert sources.resolve("fashion_mnist") == ("idx", debian)
    _write_mnist_dir(str(env / "fashion-mnist"), seed=2)
    monkeypatch.setenv("JAXLTH_DATA_DIR", str(env))
    assert sources.resolve("fashion_mnist") == ("idx", str(env / "fashion-mnist"))
    _write_mnist_dir(str(env / "fashion_mnist"), seed=2)
    assert sources.resolve("fashion_mnist") == ("idx", str(env / "fashion_mnist"))
    _write_mnist_dir(str(env), seed=2)
    assert sources.resolve("fashion_mnist") == ("idx", str(env))
    _write_mnist_dir(dir_, seed=1)
    assert sources.resolve("fashion_mnist", data_dir=dir_) == ("idx", dir_)
    # The folder found first is the one read.
    ds = data.load_dataset(_cfg(name="fashion_mnist", dir=dir_))
    expected = _write_mnist_dir(str(tmp_path / "again"), seed=1)
    np.testing.assert_array_equal(ds.train_images[..., 0], expected["train-images-idx3-ubyte"])
    assert (ds.mean, ds.std) == ((0.2860,), (0.3530,))


def test_auto_falls_back_to_tfds_when_prepared(no_data_env, monkeypatch):
    monkeypatch.setattr(tfds_source, "tfds_installed", lambda: True)
    monkeypatch.setattr(tfds_source, "prepared", lambda name, d="": (True, "/somewhere"))
    assert sources.resolve("mnist") == ("tfds", "")
    assert sources.resolve("cifar100") == ("tfds", "")
    monkeypatch.setattr(tfds_source, "prepared", lambda name, d="": (False, "/tfds/here"))
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: True)
    assert sources.resolve("mnist", download=True) == ("tfds", "")  # TFDS can prepare it: TFDS downloads
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)  # as on Colab's TPU runtimes
    monkeypatch.setattr(sources.download_lib, "fetch_idx", lambda name, folder: f"fetched {name} to {folder}")
    monkeypatch.setenv("JAXLTH_DATA_DIR", "/cache")
    assert sources.resolve("mnist", download=True) == ("idx", "fetched mnist to /cache/mnist")  # the IDX files
    monkeypatch.setattr(sources.download_lib, "fetch_cifar", lambda name, folder: f"fetched {name} to {folder}")
    assert sources.resolve("cifar100", download=True) == ("cifar_pickle", "fetched cifar100 to /cache/cifar100")
    with pytest.raises(UserError, match="prepared TFDS dataset 'mnist' in /tfds/here"):
        sources.resolve("mnist")


def test_not_found_message_names_every_place(no_data_env, monkeypatch):
    monkeypatch.setenv("JAXLTH_DATA_DIR", "/data/env")
    with pytest.raises(UserError) as info:
        data.load_dataset(_cfg(name="fashion_mnist", dir="/data/cfg"))
    msg = str(info.value)
    for place in (
        "data.dir=/data/cfg",
        "$JAXLTH_DATA_DIR=/data/env",
        "fashion_mnist/",
        "fashion-mnist/",
        places.DEBIAN_DIRS["fashion_mnist"],
        "tensorflow-datasets is not installed",
        "apt-get install dataset-fashion-mnist",
        "pip install tensorflow tensorflow-datasets",
        "data.source=tfds",
    ):
        assert place in msg, (place, msg)
    assert msg.count(". ") == 0 and msg.endswith(".")  # one sentence
    monkeypatch.delenv("JAXLTH_DATA_DIR")
    with pytest.raises(UserError, match=r"data.dir \(not set\), \$JAXLTH_DATA_DIR \(not set\)"):
        data.load_dataset(_cfg(name="mnist"))
    with pytest.raises(UserError, match="cifar-10-batches-py.*kriz/cifar"):
        data.load_dataset(_cfg(name="cifar10"))
    with pytest.raises(UserError, match="Could not find MNIST"):
        data.load_dataset(_cfg(name="mnist", source="idx"))


def test_not_found_message_names_the_tfds_dir(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.delenv("JAXLTH_DATA_DIR", raising=False)
    monkeypatch.setattr(places, "DEBIAN_DIRS", {})
    with pytest.raises(UserError, match="prepared TFDS dataset 'mnist' in .*tfds_empty"):
        data.load_dataset(_cfg(name="mnist", tfds_data_dir=str(tmp_path / "tfds_empty")))


@pytest.mark.slow
def test_real_fashion_mnist_from_debian(monkeypatch):
    if not idx.has_idx_files(DEBIAN_FASHION):
        pytest.skip(f"no Fashion-MNIST IDX files in {DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)")
    monkeypatch.delenv("JAXLTH_DATA_DIR", raising=False)
    ds = data.load_dataset(_cfg(name="fashion_mnist"))
    assert ds.train_images.shape == (60000, 28, 28, 1)
    assert ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8 and ds.source == DEBIAN_FASHION
    for labels in (ds.train_labels, ds.test_labels):
        assert labels.dtype == np.int32 and labels.min() == 0 and labels.max() == 9
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    x = ds.train_images.astype(np.float64) / 255.0
    np.testing.assert_allclose((x.mean(), x.std()), (ds.mean[0], ds.std[0]), atol=1e-4)


# ----------------------------------------------------------------------------- CIFAR pickles


def _write_cifar_dir(directory, name, sizes, seed=0):
    """A fake python-version CIFAR folder; returns train/test images (N,32,32,3) and labels."""
    os.makedirs(directory)
    rng = np.random.default_rng(seed)
    _, train_files, test_files, label_key = cifar_pickle.LAYOUTS[name]
    classes = 100 if name == "cifar100" else 10
    out = {}
    for split, files in (("train", train_files), ("test", test_files)):
        images, labels = [], []
        for f, n in zip(files, sizes[split]):
            x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, classes, n).tolist()
            batch = {b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072), label_key: y, b"batch_label": b"fake"}
            with open(os.path.join(directory, f), "wb") as fh:
                pickle.dump(batch, fh)
            images.append(x)
            labels += y
        out[split] = (np.concatenate(images), np.array(labels))
    return out


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickle_fake_folder(tmp_path, no_data_env, name):
    sizes = {"train": [3, 2, 4, 1, 2] if name == "cifar10" else [12], "test": [5]}
    folder = str(tmp_path / "root" / cifar_pickle.folder_name(name))
    expected = _write_cifar_dir(folder, name, sizes)
    ds = data.load_dataset(_cfg(name=name, dir=str(tmp_path / "root")))
    assert ds.source == folder and ds.augmentation == "cifar"
    assert ds.train_images.shape == (12, 32, 32, 3) and ds.train_images.dtype == np.uint8
    np.testing.assert_array_equal(ds.train_images, expected["train"][0])
    np.testing.assert_array_equal(ds.train_labels, expected["train"][1])
    np.testing.assert_array_equal(ds.test_images, expected["test"][0])
    assert ds.num_classes == (100 if name == "cifar100" else 10)
    assert len(ds.mean) == 3 and len(ds.std) == 3
    # The folder itself works as data.dir too.
    assert data.load_dataset(_cfg(name=name, dir=folder)).source == folder


def test_cifar_pickle_corrupt_batch(tmp_path):
    folder = str(tmp_path / "cifar-10-batches-py")
    _write_cifar_dir(folder, "cifar10", {"train": [1] * 5, "test": [1]})
    with open(os.path.join(folder, "data_batch_3"), "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        cifar_pickle.load_cifar_dir(folder, "cifar10")


# ----------------------------------------------------------------------------- generated data


def test_mnist1d_shapes_and_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXLTH_DATA_DIR", raising=False)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    ds = data.load_dataset(_cfg(name="mnist1d", dir=str(tmp_path)))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    assert ds.train_images.shape == (4000, 40, 1) and ds.test_images.shape == (1000, 40, 1)
    assert ds.train_images.dtype == np.float32 and ds.pixel_scale == 1.0
    assert ds.train_labels.dtype == np.int32 and set(np.unique(ds.train_labels)) == set(range(10))
    cache = tmp_path / mnist1d_source.CACHE_NAME
    assert cache.is_file() and ds.source == str(cache)
    np.testing.assert_allclose(ds.mean, ds.train_images.mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(ds.std, ds.train_images.std(axis=(0, 1)), rtol=1e-5)

    def no_generation():
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnist1d_source, "generate", no_generation)
    again = data.load_dataset(_cfg(name="mnist1d", dir=str(tmp_path)))
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    np.testing.assert_array_equal(again.test_labels, ds.test_labels)


def test_synthetic_deterministic_and_learnable():
    cfg = _cfg(
        name="synthetic",
        synthetic_train_size=300,
        synthetic_test_size=100,
        synthetic_image_shape=(12, 10, 3),
        synthetic_num_classes=4,
    )
    a, b = data.load_dataset(cfg), data.load_dataset(cfg)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.train_images.shape == (300, 12, 10, 3) and a.train_images.dtype == np.uint8
    assert a.test_images.shape == (100, 12, 10, 3) and a.num_classes == 4
    assert a.train_labels.dtype == np.int32 and np.bincount(a.train_labels).tolist() == [75] * 4
    assert len(a.mean) == 3 and all(0 < s < 1 for s in a.std)
    other = synthetic.make_synthetic(300, 100, (12, 10, 3), 4, seed=1)
    assert not np.array_equal(other[0], a.train_images)
    # Nearest class mean classifies the test split well: the data is learnable.
    x, xt = a.train_images.reshape(300, -1) / 255.0, a.test_images.reshape(100, -1) / 255.0
    means = np.stack([x[a.train_labels == c].mean(0) for c in range(4)])
    predicted = np.argmin(((xt[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == a.test_labels).mean() > 0.9


# ----------------------------------------------------------------------------- subsets


def _indexed_dataset(n=1000, num_classes=10):
    """Image i holds the value i (as a uint16 pair in two channels) so rows can be traced."""
    ids = np.arange(n)
    images = np.stack([ids // 256, ids % 256], axis=-1).astype(np.uint8).reshape(n, 1, 1, 2)
    labels = (ids % num_classes).astype(np.int32)
    test = np.zeros((5, 1, 1, 2), np.uint8)
    return Dataset(
        name="toy",
        train_images=images,
        train_labels=labels,
        test_images=test,
        test_labels=np.zeros(5, np.int32),
        num_classes=num_classes,
        mean=(0.0, 0.0),
        std=(1.0, 1.0),
        source="toy",
    )


def _ids(ds):
    return ds.train_images[:, 0, 0, 0].astype(int) * 256 + ds.train_images[:, 0, 0, 1]


def test_subsample_size_determinism_and_test_split():
    ds = _indexed_dataset()
    a, b, c = subsample(ds, 0.25, 1), subsample(ds, 0.25, 1), subsample(ds, 0.25, 2)
    assert a.num_train == 250 and subsample(ds, 0.3333, 0).num_train == round(0.3333 * 1000)
    np.testing.assert_array_equal(_ids(a), _ids(b))
    assert not np.array_equal(_ids(a), _ids(c))
    assert len(set(_ids(a))) == 250 and np.all(np.diff(_ids(a)) > 0)
    np.testing.assert_array_equal(a.train_labels, _ids(a) % 10)  # labels follow their images
    assert a.test_images is ds.test_images and a.test_labels is ds.test_labels
    assert subsample(ds, 1.0, 0) is ds
    for bad in (0.0, -0.1, 1.5, "half", None, 0.0001):
        with pytest.raises(UserError, match="subsample_fraction"):
            subsample(ds, bad, 0)


def test_randomize_labels_fraction_and_determinism():
    ds = _indexed_dataset(n=20000, num_classes=10)
    original = ds.train_labels.copy()
    a = randomize_labels(ds, 0.3, seed=5)
    changed = (a.train_labels != original).mean()
    assert abs(changed - 0.3 * (1 - 1 / 10)) < 0.015
    np.testing.assert_array_equal(a.train_labels, randomize_labels(ds, 0.3, seed=5).train_labels)
    assert not np.array_equal(a.train_labels, randomize_labels(ds, 0.3, seed=6).train_labels)
    np.testing.assert_array_equal(ds.train_labels, original)  # input untouched
    assert a.train_images is ds.train_images and a.test_labels is ds.test_labels
    assert a.train_labels.min() >= 0 and a.train_labels.max() < 10
    assert a.train_labels.dtype == np.int32
    full = randomize_labels(ds, 1.0, seed=0)
    assert abs((full.train_labels != original).mean() - 0.9) < 0.015
    assert randomize_labels(ds, 0.0, seed=0) is ds
    for bad in (-0.01, 1.01, "x"):
        with pytest.raises(UserError, match="random_labels_fraction"):
            randomize_labels(ds, bad, 0)


def test_load_dataset_applies_subset_then_label_noise():
    cfg = _cfg(
        name="synthetic", synthetic_train_size=400, subsample_fraction=0.5, random_labels_fraction=0.5, subset_seed=3
    )
    ds = data.load_dataset(cfg)
    full = data.load_dataset(_cfg(name="synthetic", synthetic_train_size=400))
    assert ds.num_train == 200 and ds.num_test == full.num_test
    np.testing.assert_array_equal(ds.test_labels, full.test_labels)
    np.testing.assert_array_equal(ds.train_images, subsample(full, 0.5, 3).train_images)
    with pytest.raises(UserError, match="subsample_fraction"):
        data.load_dataset(_cfg(name="synthetic", subsample_fraction=2.0))


# ----------------------------------------------------------------------------- TFDS


@functools.lru_cache(maxsize=None)
def _tiny_builder_class():
    """A TFDS builder of 28x28x1 uint8 images stored as plain tensors (defined once: TFDS
    registers builders by name)."""
    import tensorflow_datasets as tfds

    class JaxlthTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            )
            return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30), "test": self._generate_examples(12)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((28, 28, 1), i, np.uint8), "label": i % 10}

    return JaxlthTinyImages


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_reads_a_real_prepared_dataset(tmp_path, file_format):
    """Prepares a tiny dataset offline, then reads it the way ``auto`` picks for its format:
    ArrayRecord through ``tfds.data_source`` (no TensorFlow), TFRecord through ``tfds.load``."""
    pytest.importorskip("tensorflow_datasets")
    if file_format == "tfrecord" and not tfds_source.tensorflow_installed():
        pytest.skip(
            "TensorFlow is not installed: writing and reading TFRecord files (the "
            "tfds.load reader used in Colab) needs it; the TF-free ArrayRecord reader "
            "is tested without it"
        )
    data_dir = str(tmp_path / "tfds")
    _tiny_builder_class()(data_dir=data_dir, file_format=file_format).download_and_prepare()
    assert tfds_source.prepared("jaxlth_tiny_images", data_dir) == (
        True,
        os.path.join(data_dir, "jaxlth_tiny_images", "1.0.0"),
    )
    expected = "data_source" if file_format == "array_record" else "tf"
    assert tfds_source._choose_backend("jaxlth_tiny_images", data_dir) == expected
    train_x, train_y, test_x, test_y = tfds_source.read_splits("jaxlth_tiny_images", data_dir, download=False)
    assert train_x.shape == (30, 28, 28, 1) and train_x.dtype == np.uint8
    assert test_x.shape == (12, 28, 28, 1) and train_y.dtype == np.int32
    ids = train_x[:, 0, 0, 0].astype(int)
    assert sorted(ids) == list(range(30))  # every example once (TFDS shuffles the order)
    np.testing.assert_array_equal(train_y, ids % 10)
    assert (train_x == train_x[:, :1, :1, :]).all()


def test_tfds_mocked_real_datasets_through_load_dataset(no_data_env, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds_source, "tfds_installed", lambda: True)

    def fake_source(builder, split, **kwargs):
        # Without TensorFlow, TFDS's default data_source mock lacks a working __getitems__;
        # this one is a plain list, the minimal protocol.
        shape = builder.info.features["image"].shape
        classes = builder.info.features["label"].num_classes
        rng = np.random.default_rng(0)
        return [
            [{"image": rng.integers(0, 256, shape, dtype=np.uint8), "label": i % classes} for i in range(16)]
            for _ in split
        ]

    for name, shape, classes in (("fashion_mnist", (28, 28, 1), 10), ("cifar100", (32, 32, 3), 100)):
        with tfds.testing.mock_data(num_examples=16, as_data_source_fn=fake_source):
            explicit = data.load_dataset(_cfg(name=name, source="tfds"))
            # without TensorFlow the original files (IDX, CIFAR tarball) are downloaded instead
            monkeypatch.setattr(
                sources.download_lib,
                "fetch_idx" if name == "fashion_mnist" else "fetch_cifar",
                lambda *a: (_ for _ in ()).throw(UserError("the download without TensorFlow was chosen")),
            )
            with pytest.raises(UserError, match="the download without TensorFlow was chosen"):
                data.load_dataset(_cfg(name=name, download=True))
            with monkeypatch.context() as patch:
                patch.setattr(tfds_source, "prepared", lambda name, d="": (True, "mocked"))
                auto = data.load_dataset(_cfg(name=name))  # no local files, a prepared TFDS dataset: TFDS
        for ds in (explicit, auto):
            assert ds.source == "tfds" and ds.train_images.shape == (16,) + shape
            assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
            assert ds.test_images.shape == (16,) + shape and ds.num_classes == classes
            assert 0 <= ds.train_labels.min() and ds.train_labels.max() < classes
            assert ds.augmentation == ("cifar" if name == "cifar100" else "none")


def test_tfds_missing_dataset_is_a_user_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    empty = str(tmp_path / "tfds_empty")
    assert tfds_source.prepared("mnist", empty)[0] is False
    with pytest.raises(UserError, match="no prepared 'mnist' in .*tfds_empty.*download"):
        tfds_source.load_tfds("mnist", empty, download=False, backend="data_source")


def test_tfrecord_files_without_tensorflow_is_a_user_error(monkeypatch):
    monkeypatch.setattr(tfds_source, "tfds_installed", lambda: True)
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)
    monkeypatch.setattr(tfds_source, "_choose_backend", lambda name, data_dir: "tf")
    with pytest.raises(UserError, match="TFRecord files, which only TensorFlow reads"):
        tfds_source.load_tfds("cifar10", "/some/dir")


@pytest.mark.slow
def test_idx_and_synthetic_paths_do_not_import_tfds(tmp_path):
    _write_mnist_dir(str(tmp_path / "m"))
    script = textwrap.dedent(f"""
        import sys
        from jaxlth import data
        cfg = data.default_config()
        cfg.name = "synthetic"
        data.load_dataset(cfg)
        cfg.name, cfg.dir = "mnist", {str(tmp_path / "m")!r}
        assert data.load_dataset(cfg).source == {str(tmp_path / "m")!r}
        cfg.name, cfg.dir = "fashion_mnist", {str(tmp_path / "m")!r}
        data.load_dataset(cfg)
        print("tfds" if "tensorflow_datasets" in sys.modules else "clean")
    """)
    env = {k: v for k, v in os.environ.items() if k != "JAXLTH_DATA_DIR"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "clean"


def test_images_pad_to_a_square_size_centred_with_zeros():
    from jaxlth.data import load_dataset
    from jaxlth.errors import UserError

    config = {
        "name": "synthetic",
        "source": "synthetic",
        "synthetic_train_size": 8,
        "synthetic_test_size": 4,
        "synthetic_image_shape": (28, 28, 1),
    }
    plain = load_dataset(config)
    padded = load_dataset({**config, "pad_to": 32})
    assert padded.train_images.shape == (8, 32, 32, 1) and padded.test_images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(padded.train_images[:, 2:30, 2:30], plain.train_images)
    assert padded.train_images[:, :2].max() == 0 and padded.train_images[:, :, 30:].max() == 0
    with pytest.raises(UserError, match="cannot pad 28x28 images to 20x20"):
        load_dataset({**config, "pad_to": 20})
