"""CIFAR python-version batches are read with a restricted unpickler: real batches load, crafted ones
(pickles that would run code) are refused with one sentence naming the file, and nothing runs."""

import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys

import numpy as np
import pytest

from jaxlth import data
from jaxlth.data.sources import cifar_pickle
from jaxlth.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "tests", "configs", "tiny.py")


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING), as cPickle wrote the real CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str8(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = save_str8
    dispatch[str] = save_str8


def _dumps(obj, protocol):
    """``protocol``: 0-5 (this Python and numpy), or "py2": as the files on the CIFAR page are
    (protocol 2, Python 2 strings, ``numpy.core.multiarray._reconstruct``)."""
    if protocol != "py2":
        return pickle.dumps(obj, protocol=protocol)
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _write_cifar10(folder, sizes=(3, 2, 4, 1, 2, 5), protocol=4, seed=0):
    """A CIFAR-10 python-version folder laid out as the real one (``data_batch_1..5``,
    ``test_batch``, ``batches.meta``); returns ``{file: (images (N, 32, 32, 3), labels)}``."""
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    _, train_files, test_files, _ = cifar_pickle.LAYOUTS["cifar10"]
    written = {}
    for i, (f, n) in enumerate(zip(train_files + test_files, sizes)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n).tolist()
        batch = {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": y,
            b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        with open(os.path.join(folder, f), "wb") as fh:
            fh.write(_dumps(batch, protocol))
        written[f] = (x, np.array(y))
    meta = {
        b"label_names": [
            b"airplane",
            b"automobile",
            b"bird",
            b"cat",
            b"deer",
            b"dog",
            b"frog",
            b"horse",
            b"ship",
            b"truck",
        ],
        b"num_cases_per_batch": 10000,
        b"num_vis": 3072,
    }
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        fh.write(_dumps(meta, protocol))
    return written


def _cfg(folder):
    cfg = data.default_config()
    cfg.update(name="cifar10", source="cifar_pickle", dir=str(folder))
    return cfg


def _one_sentence(message, path):
    assert path in message and "\n" not in message and "Traceback" not in message
    assert ". " not in message.replace(path, "") and message.count(";") <= 1, message


# ----------------------------------------------------------------------------- real batches load


@pytest.mark.parametrize("protocol", ["py2", 0, 1, 2, 3, 4, 5])
def test_a_valid_cifar10_folder_loads(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    written = _write_cifar10(str(folder), protocol=protocol)
    ds = data.load_dataset(_cfg(tmp_path))
    assert ds.source == str(folder) and ds.num_classes == 10
    assert ds.train_images.shape == (12, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (5, 32, 32, 3) and ds.train_labels.dtype == np.int32
    train = [written[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(ds.train_images, np.concatenate([x for x, _ in train]))
    np.testing.assert_array_equal(ds.train_labels, np.concatenate([y for _, y in train]))
    np.testing.assert_array_equal(ds.test_images, written["test_batch"][0])
    np.testing.assert_array_equal(ds.test_labels, written["test_batch"][1])


def test_the_py2_layout_is_what_the_cifar_page_ships():
    """The "py2" files use only the three numpy globals of the real files, in numpy 1's spelling."""
    raw = _dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, "py2")
    names = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert names == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert b"U\x04data" in raw  # a Python 2 str, read back as bytes


def test_cifar100_and_label_arrays(tmp_path):
    folder = tmp_path / "cifar-100-python"
    os.makedirs(folder)
    for f, n in (("train", 6), ("test", 3)):
        batch = {
            b"data": np.full((n, 3072), 7, np.uint8),
            b"fine_labels": np.arange(n, dtype=np.int64) * 15,
            b"coarse_labels": [0] * n,
        }
        (folder / f).write_bytes(pickle.dumps(batch, protocol=5))
    train_x, train_y, test_x, test_y = cifar_pickle.load_cifar_dir(str(folder), "cifar100")
    assert train_x.shape == (6, 32, 32, 3) and test_x.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(train_y, [0, 15, 30, 45, 60, 75])
    assert train_y.dtype == np.int32 and test_y.tolist() == [0, 15, 30]


# ----------------------------------------------------------------------------- crafted batches are refused


def _payloads(marker):
    """``{name: (pickle bytes that create ``marker`` when unpickled unrestricted, what is refused)}``."""
    m = str(marker)
    code = f"open({m!r}, 'w').write('ran')"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {m}",)

    inner = m + ".npy"  # written by _write_inner: numpy.load(inner, None, True) unpickles it
    hidden = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"batch_label": Evil()}
    return {
        "os.system": (f"cos\nsystem\n(Vtouch {m}\ntR.".encode(), "os.system"),
        "posix.system": (f"cposix\nsystem\n(Vtouch {m}\ntR.".encode(), "posix.system"),
        "builtins.exec": (f"cbuiltins\nexec\n(V{code}\ntR.".encode(), "builtins.exec"),
        "__builtin__.eval": (f"c__builtin__\neval\n(V{code}\ntR.".encode(), "__builtin__.eval"),
        "subprocess.Popen": (f"csubprocess\nPopen\n((Vtouch\nV{m}\nttR.".encode(), "subprocess.Popen"),
        "numpy.load": (f"cnumpy\nload\n(V{inner}\nNI01\ntR.".encode(), "numpy.load"),
        "numpy runstring": (
            f"cnumpy.testing._private.utils\nrunstring\n(V{code}\n(dtR.".encode(),
            "numpy.testing._private.utils.runstring",
        ),
        "inside a valid batch, protocol 2": (pickle.dumps(hidden, protocol=2), f"{os.system.__module__}.system"),
        "inside a valid batch, protocol 5": (pickle.dumps(hidden, protocol=5), f"{os.system.__module__}.system"),
    }


PAYLOADS = list(_payloads("/nonexistent/marker"))


def _write_inner(marker):
    with open(f"{marker}.npy", "wb") as f:
        f.write(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())


def _run_unrestricted(raw):
    """What ``pickle.loads`` does with ``raw``: the proof that a payload is live."""
    result = pickle.loads(raw, encoding="bytes")
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=30)


@pytest.mark.parametrize("name", PAYLOADS)
def test_a_crafted_batch_is_refused_and_runs_nothing(tmp_path, name):
    # The payload is live: plain pickle runs it.
    proof = tmp_path / "proof" / "ran"
    proof.parent.mkdir()
    raw, _ = _payloads(proof)[name]
    _write_inner(proof)
    _run_unrestricted(raw)
    assert proof.exists()
    # The loader refuses the same payload and nothing runs.
    marker = tmp_path / "marker"
    raw, refused = _payloads(marker)[name]
    _write_inner(marker)
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    path = str(folder / "data_batch_1")
    with open(path, "wb") as f:
        f.write(raw)
    with pytest.raises(UserError) as e:
        data.load_dataset(_cfg(tmp_path))
    message = str(e.value)
    assert message == (
        f"the file {path} is not a CIFAR batch: it asks to load {refused}, which a CIFAR batch "
        "never holds; delete it or point data.dir elsewhere"
    )
    _one_sentence(message, path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, fragment",
    [
        (np.array([b"x", 1], dtype=object), "numpy array of object"),
        (np.zeros(2, [("a", "u1"), ("b", "f4")]), "numpy array of"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_arrays_of_anything_but_plain_numbers_are_refused(tmp_path, obj, fragment, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    path = str(folder / "test_batch")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": obj, b"labels": []}, protocol=protocol))
    with pytest.raises(UserError, match="is not a CIFAR batch: it holds a " + fragment) as e:
        cifar_pickle.load_cifar_dir(str(folder), "cifar10")
    _one_sentence(str(e.value), path)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"c_codecs\nencode\n(Vx\nVrot13\ntR.", "_codecs.encode with encoding 'rot13'"),
        (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\ndtype\n(I0\ntVb\ntR.", "rebuild a function as"),
        (b"cnumpy\nndarray\n(I3\ntR.", "Could not read"),  # numpy.ndarray is never callable
        (b"\x80\x04\x8c\x08os\nfake\n\x94\x8c\x06system\x94\x93\x94.", "it asks to load 'os"),  # a name with newlines
    ],
)
def test_the_allowed_globals_only_do_what_a_cifar_batch_needs(tmp_path, raw, fragment):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    (folder / "data_batch_2").write_bytes(raw)
    with pytest.raises(UserError, match=fragment) as e:
        cifar_pickle.load_cifar_dir(str(folder), "cifar10")
    _one_sentence(str(e.value), str(folder / "data_batch_2"))


def test_a_pickle_cannot_alter_numpy_dtypes(tmp_path):
    """A dtype's pickled state flagging it as holding Python objects (raw bytes then read as object
    pointers) is not applied: the dtype is numpy's shared uint8, which ignores its pickled state."""
    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    state = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # ..., alignment -1, elsize -1, flags 0)
    assert raw.count(state) == 1
    evil = raw.replace(state, state.replace(b"K\x00t", b"K\x01t"))  # flags: NPY_ITEM_HASOBJECT
    # The payload is live: plain pickle builds a uint8 array flagged as holding objects.
    check = (
        "import os, pickle, sys; a = pickle.loads(sys.stdin.buffer.read(), encoding='bytes')[b'data']; "
        "print(a.dtype, a.dtype.hasobject, flush=True); os._exit(0)"
    )
    proof = subprocess.run([sys.executable, "-c", check], input=evil, capture_output=True, timeout=120)
    assert proof.stdout.split() == [b"uint8", b"True"], proof
    # The restricted unpickler builds the array with numpy's own uint8, and the batch loads.
    restricted = cifar_pickle._CifarUnpickler(io.BytesIO(evil), encoding="bytes").load()[b"data"]
    assert restricted.dtype is np.dtype(np.uint8) and not restricted.dtype.hasobject
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    (folder / "data_batch_1").write_bytes(evil)
    images, labels, _, _ = cifar_pickle.load_cifar_dir(str(folder), "cifar10")
    assert images.shape == (12 - 3 + 1, 32, 32, 3) and images.dtype == np.uint8 and not images.dtype.hasobject
    assert labels[0] == 0 and np.dtype(np.uint8).flags == 0 and not np.dtype(np.uint8).hasobject


def test_the_command_line_refuses_a_crafted_folder_in_one_line(tmp_path, cli):
    marker = tmp_path / "marker"
    crafted = tmp_path / "shared"
    folder = crafted / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    path = str(folder / "data_batch_3")
    with open(path, "wb") as f:
        f.write(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())
    proc = cli(
        "--config",
        TINY,
        "--workdir",
        str(tmp_path / "W"),
        "--config.data.name=cifar10",
        "--config.data.source=cifar_pickle",
        f"--config.data.dir={crafted}",
        timeout=240,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"jaxlth: error: the file {path} is not a CIFAR batch: it asks to load os.system, which a "
        "CIFAR batch never holds; delete it or point data.dir elsewhere"
    ], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not marker.exists()


# ----------------------------------------------------------------------------- malformed but harmless batches


def _malformed():
    good = np.zeros((2, 3072), np.uint8)
    return {
        "wrong shape": (
            {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]},
            "is a uint8 array of shape (2, 3000)",
        ),
        # numpy's shared int32 ignores a pickled byte order: big-endian labels read wrong, and out of range
        "big-endian labels": ({b"data": good, b"labels": np.array([1, 2], ">i4")}, "are not 2 integers in [0, 10)"),
        "3-D data": ({b"data": np.zeros((2, 3, 1024), np.uint8), b"labels": [0, 1]}, "not a uint8 (N, 3072) array"),
        "float data": ({b"data": good.astype(np.float32), b"labels": [0, 1]}, "is a float32 array of shape (2, 3072)"),
        "data as bytes": ({b"data": good.tobytes(), b"labels": [0, 1]}, "is of type bytes, not a uint8"),
        "missing labels": ({b"data": good, b"fine_labels": [0, 1]}, "without b'data' or b'labels'"),
        "missing data": ({b"labels": [0, 1]}, "without b'data' or b'labels'"),
        "str keys": ({"data": good, "labels": [0, 1]}, "holds a dict without"),
        "not a dict": ([good, [0, 1]], "holds a list without"),
        "too few labels": ({b"data": good, b"labels": [0]}, "are not 2 integers in [0, 10)"),
        "label out of range": ({b"data": good, b"labels": [0, 10]}, "are not 2 integers in [0, 10)"),
        "negative label array": ({b"data": good, b"labels": np.array([0, -1])}, "are not 2 integers"),
        "float labels": ({b"data": good, b"labels": [0.0, 1.0]}, "are not 2 integers"),
        "2-D label array": ({b"data": good, b"labels": np.zeros((2, 1), np.int64)}, "are not 2 integers"),
    }


@pytest.mark.parametrize("name", list(_malformed()))
def test_a_malformed_batch_is_one_sentence_naming_the_file(tmp_path, name):
    obj, fragment = _malformed()[name]
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    path = str(folder / "data_batch_4")
    (folder / "data_batch_4").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(UserError) as e:
        data.load_dataset(_cfg(tmp_path))
    assert fragment in str(e.value), str(e.value)
    _one_sentence(str(e.value), path)


@pytest.mark.parametrize("raw", [b"", b"not a pickle", pickle.dumps({b"data": 1})[:-5], b"\x80\x05\x95"])
def test_an_unreadable_batch_is_one_sentence_naming_the_file(tmp_path, raw):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(str(folder))
    (folder / "test_batch").write_bytes(raw)
    with pytest.raises(UserError, match="Could not read the CIFAR batch") as e:
        cifar_pickle.load_cifar_dir(str(folder), "cifar10")
    _one_sentence(str(e.value), str(folder / "test_batch"))
