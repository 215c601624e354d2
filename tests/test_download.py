"""Downloading without TensorFlow (Colab's TPU runtimes), tested against a local HTTP server on
127.0.0.1: Debian's Fashion-MNIST IDX files and a tiny CIFAR-10 tarball. Checksums verified, nothing
unverified cached, unsafe tarballs refused whole, a second call downloads nothing, and
data.download=True loads the dataset through it."""

import copy
import functools
import http.server
import io
import os
import shutil
import tarfile
import threading

import pytest

from jaxlth.data import load_dataset
from jaxlth.data.sources import download, idx
from jaxlth.errors import UserError
from tests.conftest import FASHION_MNIST_DIR, tiny_config
from tests.test_cifar_pickle import _write_cifar10

needs_fashion_mnist = pytest.mark.skipif(
    not idx.has_idx_files(FASHION_MNIST_DIR), reason="Debian's Fashion-MNIST is missing"
)
TARBALL = "cifar-10-python.tar.gz"


def _serve(served, cut=()):
    """Starts a server of the folder ``served``; returns ``(httpd, base URL, requested paths)``. Files
    named in ``cut`` promise their full length but send half of it, then close the connection."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            name = self.path.lstrip("/")
            if name not in cut:
                return super().do_GET()
            body = (served / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/", requested


@pytest.fixture
def server(tmp_path):
    """``(base URL, requested paths)`` of a local server of the Fashion-MNIST .gz files."""
    served = tmp_path / "served"
    served.mkdir()
    for file in download.MD5["fashion_mnist"]:
        shutil.copy(os.path.join(FASHION_MNIST_DIR, file), served / file)
    httpd, base, requested = _serve(served)
    yield base, requested, served
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


@needs_fashion_mnist
def test_files_are_checked_cached_and_not_fetched_twice(local_mirror, tmp_path):
    folder = tmp_path / "cache"
    assert download.fetch_idx("fashion_mnist", str(folder)) == str(folder)
    assert sorted(os.listdir(folder)) == sorted(download.MD5["fashion_mnist"])
    assert len(local_mirror) == 4
    download.fetch_idx("fashion_mnist", str(folder))
    assert len(local_mirror) == 4  # all four verified on disk: nothing fetched again


@needs_fashion_mnist
def test_a_checksum_mismatch_is_one_sentence_and_caches_nothing(local_mirror, tmp_path, monkeypatch):
    sums = dict(download.MD5["fashion_mnist"], **{"train-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setitem(download.MD5, "fashion_mnist", sums)
    folder = tmp_path / "cache"
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte.gz has MD5 \w+, not the published 0{32}; nothing"):
        download.fetch_idx("fashion_mnist", str(folder))
    assert "train-labels-idx1-ubyte.gz" not in os.listdir(folder)
    assert not [f for f in os.listdir(folder) if f.endswith(".part")]


@needs_fashion_mnist
def test_no_reachable_mirror_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(download.URLS, "fashion_mnist", ("http://127.0.0.1:9/",))
    with pytest.raises(UserError, match="could not download train-images-idx3-ubyte.gz of fashion_mnist"):
        download.fetch_idx("fashion_mnist", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


@needs_fashion_mnist
def test_data_download_loads_fashion_mnist_through_the_mirror(local_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXLTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("jaxlth.data.sources.places.DEBIAN_DIRS", {})  # as in Colab: no local files
    config = tiny_config(**{"data.name": "fashion_mnist", "data.source": "auto", "data.download": True})
    dataset = load_dataset(config.data)
    assert (dataset.num_train, dataset.num_test) == (60_000, 10_000)
    assert dataset.source == str(tmp_path / "data" / "fashion_mnist")
    assert len(local_mirror) == 4


def _tarball(path, cifar_dir=None, extra=()):
    """Writes a gzipped tarball at ``path``: ``cifar_dir`` as ``cifar-10-batches-py/``, then the
    ``(TarInfo, bytes)`` pairs of ``extra``."""
    with tarfile.open(path, "w:gz") as archive:
        if cifar_dir is not None:
            archive.add(cifar_dir, arcname="cifar-10-batches-py")
        for info, data in extra:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def cifar_mirror(tmp_path, monkeypatch):
    """``(serve, written)``: ``serve(tarball_path, cut=False)`` serves that tarball as CIFAR-10's
    (URL and MD5 table pointed at it) and returns the requested paths; ``written`` the tiny batches."""
    written = _write_cifar10(str(tmp_path / "source" / "cifar-10-batches-py"))
    servers = []

    def serve(tarball, cut=False):
        served = tmp_path / f"served{len(servers)}"
        served.mkdir()
        shutil.copy(tarball, served / TARBALL)
        httpd, base, requested = _serve(served, cut=(TARBALL,) if cut else ())
        servers.append(httpd)
        monkeypatch.setitem(download.URLS, "cifar10", (base,))
        monkeypatch.setitem(download.MD5, "cifar10", {TARBALL: download.md5_of(str(served / TARBALL))})
        return requested

    yield serve, written
    for httpd in servers:
        httpd.shutdown()


def _good(tmp_path):
    return _tarball(str(tmp_path / "good.tar.gz"), str(tmp_path / "source" / "cifar-10-batches-py"))


def test_cifar10_downloads_through_load_dataset_and_is_not_fetched_twice(cifar_mirror, tmp_path, monkeypatch):
    serve, written = cifar_mirror
    requested = serve(_good(tmp_path))
    monkeypatch.setenv("JAXLTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("jaxlth.data.sources.tfds_source.tensorflow_installed", lambda: False)  # as on Colab's TPUs
    config = tiny_config(**{"data.name": "cifar10", "data.source": "auto", "data.download": True})
    dataset = load_dataset(config.data)
    folder = tmp_path / "data" / "cifar10"
    assert dataset.source == str(folder / "cifar-10-batches-py")
    assert (dataset.num_train, dataset.num_test) == (12, 5)
    assert (dataset.test_images == written["test_batch"][0]).all()
    assert sorted(os.listdir(folder)) == ["cifar-10-batches-py", TARBALL]
    assert requested == ["/" + TARBALL]
    load_dataset(config.data)
    shutil.rmtree(folder / "cifar-10-batches-py")  # the tarball is still cached, verified: extracted again
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as before Python 3.11.4
    assert download.fetch_cifar("cifar10", str(folder)) == str(folder / "cifar-10-batches-py")
    assert requested == ["/" + TARBALL]


def test_cifar_checksum_mismatch_caches_nothing(cifar_mirror, tmp_path, monkeypatch):
    serve, _ = cifar_mirror
    serve(_good(tmp_path))
    monkeypatch.setitem(download.MD5, "cifar10", {TARBALL: "0" * 32})
    with pytest.raises(UserError, match=r"cifar-10-python.tar.gz has MD5 \w+, not the published 0{32}; nothing"):
        download.fetch_cifar("cifar10", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


def test_cifar_truncated_download_caches_nothing(cifar_mirror, tmp_path):
    serve, _ = cifar_mirror
    serve(_good(tmp_path), cut=True)
    with pytest.raises(UserError, match=r"could not download cifar-10-python.tar.gz .*ended after \d+ of \d+ bytes"):
        download.fetch_cifar("cifar10", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


def test_cifar_unreachable_mirror_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(download.URLS, "cifar10", ("http://127.0.0.1:9/",))
    with pytest.raises(UserError, match=r"could not download cifar-10-python.tar.gz of cifar10 \(.*\); extract"):
        download.fetch_cifar("cifar10", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


def _member(name, kind=tarfile.REGTYPE, data=b"x", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    "member",
    [
        _member("../evil"),
        _member("cifar-10-batches-py/../../evil"),
        _member("/ABSOLUTE/evil"),  # made an absolute path inside tmp_path by the test
        _member("cifar-10-batches-py/link", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("cifar-10-batches-py/hard", tarfile.LNKTYPE, link="cifar-10-batches-py/test_batch"),
        _member("cifar-10-batches-py/dev", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device"],
)
@pytest.mark.parametrize("filters", [True, False], ids=["filters", "python-3.11.3"])
def test_an_unsafe_tarball_is_refused_whole(cifar_mirror, tmp_path, monkeypatch, member, filters):
    serve, _ = cifar_mirror
    if not filters:  # as before Python 3.11.4: no extraction filters, only jaxlth's own checks
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    info, data = member
    info = copy.copy(info)
    info.name = info.name.replace("/ABSOLUTE", str(tmp_path / "outside"))
    bad = _tarball(str(tmp_path / "bad.tar.gz"), str(tmp_path / "source" / "cifar-10-batches-py"), [(info, data)])
    serve(bad)
    cache = tmp_path / "sub" / "cache"
    with pytest.raises(UserError, match=r"^Refused the CIFAR tarball .*: it holds .* nothing was extracted; it was"):
        download.fetch_cifar("cifar10", str(cache))
    assert os.listdir(cache) == []
    assert os.listdir(tmp_path / "sub") == ["cache"] and not os.path.exists(tmp_path / "outside")


def test_a_tarball_without_the_cifar_folder_is_refused(cifar_mirror, tmp_path):
    serve, _ = cifar_mirror
    serve(_tarball(str(tmp_path / "empty.tar.gz"), extra=[_member("README")]))
    with pytest.raises(UserError, match="does not hold cifar-10-batches-py/ with every batch file of cifar10"):
        download.fetch_cifar("cifar10", str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []
