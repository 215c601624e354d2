"""Downloading the IDX files (Colab without TensorFlow), tested against a local HTTP server on
127.0.0.1 serving Debian's Fashion-MNIST files: checksums verified, nothing unverified cached, a
second call downloads nothing, and data.download=True loads the dataset through it."""

import functools
import http.server
import os
import shutil
import threading

import pytest

from jaxlth.data import load_dataset
from jaxlth.data.sources import download, idx
from jaxlth.errors import UserError
from tests.conftest import FASHION_MNIST_DIR, tiny_config

pytestmark = pytest.mark.skipif(not idx.has_idx_files(FASHION_MNIST_DIR), reason="Debian's Fashion-MNIST is missing")


@pytest.fixture
def server(tmp_path):
    """``(base URL, requested paths)`` of a local server of the Fashion-MNIST .gz files."""
    served = tmp_path / "served"
    served.mkdir()
    for file in download.MD5["fashion_mnist"]:
        shutil.copy(os.path.join(FASHION_MNIST_DIR, file), served / file)
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", requested, served
    httpd.shutdown()


@pytest.fixture
def local_mirror(server, monkeypatch):
    """The download table pointed at the local server, with the served files' checksums (Debian's
    files are recompressed: their .gz MD5s differ from the published ones, their contents do not)."""
    base, requested, served = server
    monkeypatch.setitem(download.URLS, "fashion_mnist", ("http://127.0.0.1:9/", base))  # the first mirror is down
    sums = {file: download.md5_of(str(served / file)) for file in download.MD5["fashion_mnist"]}
    monkeypatch.setitem(download.MD5, "fashion_mnist", sums)
    return requested


def test_files_are_checked_cached_and_not_fetched_twice(local_mirror, tmp_path):
    folder = tmp_path / "cache"
    assert download.fetch_idx("fashion_mnist", str(folder)) == str(folder)
    assert sorted(os.listdir(folder)) == sorted(download.MD5["fashion_mnist"])
    assert len(local_mirror) == 4
    download.fetch_idx("fashion_mnist", str(folder))
    assert len(local_mirror) == 4  # all four verified on disk: nothing fetched again


def test_a_checksum_mismatch_is_one_sentence_and_caches_nothing(local_mirror, tmp_path, monkeypatch):
    sums = dict(download.MD5["fashion_mnist"], **{"train-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setitem(download.MD5, "fashion_mnist", sums)
    folder = tmp_path / "cache"
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte.gz has MD5 \w+, not the published 0{32}; nothing"):
        download.fetch_idx("fashion_mnist", str(folder))
    assert "train-labels-idx1-ubyte.gz" not in os.listdir(folder)
    assert not [f for f in os.listdir(folder) if f.endswith(".part")]


def test_no_reachable_mirror_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(download.URLS, "fashion_mnist", ("http://127.0.0.1:9/",))
    with pytest.raises(UserError, match="could not download train-images-idx3-ubyte.gz of fashion_mnist"):
        download.fetch_idx("fashion_mnist", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


def test_data_download_loads_fashion_mnist_through_the_mirror(local_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("jaxlth.data.sources.DEBIAN_DIRS", {})  # as in Colab: no local files
    config = tiny_config(**{"data.name": "fashion_mnist", "data.source": "auto", "data.download": True})
    dataset = load_dataset(config.data)
    assert (dataset.num_train, dataset.num_test) == (60_000, 10_000)
    assert dataset.source == str(tmp_path / "data" / "fashion_mnist")
    assert len(local_mirror) == 4
