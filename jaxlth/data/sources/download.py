"""Downloading the original MNIST and Fashion-MNIST IDX files (Colab without TensorFlow, any machine
with a network), each checked against its published MD5 before it is kept.

The files go to a cache folder (``data.dir``, else ``$JAXLTH_DATA_DIR/<name>``, else
``~/.cache/jaxlth/datasets/<name>``) and are read there as any IDX folder; a file already there
with the right checksum is not fetched again. A download is written to ``<file>.part`` and renamed
only once its checksum matches, so a failed or corrupted download caches nothing.

Checksums: the MD5s of the gzipped files as published with the datasets and used by torchvision's
``MNIST`` / ``FashionMNIST`` (Fashion-MNIST: Zalando Research's README).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from typing import Callable

from jaxlth.data.sources import idx
from jaxlth.errors import UserError

# Mirrors tried in order for each file.
URLS = {
    "fashion_mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
}
MD5 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
}
TIMEOUT_S = 60


def cache_dir(name: str, data_dir: str = "") -> str:
    """Where ``name``'s downloaded files go: ``data.dir``, ``$JAXLTH_DATA_DIR/<name>``, or
    ``~/.cache/jaxlth/datasets/<name>``."""
    if data_dir:
        return os.path.expanduser(data_dir)
    env = os.environ.get("JAXLTH_DATA_DIR", "")
    base = os.path.expanduser(env) if env else os.path.join(os.path.expanduser("~"), ".cache", "jaxlth", "datasets")
    return os.path.join(base, name)


def md5_of(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_idx(name: str, folder: str, opener: Callable = urllib.request.urlopen) -> str:
    """Makes ``folder`` hold ``name``'s four IDX files (downloading those missing); returns it.

    Raises UserError (one sentence) when a file cannot be downloaded from any mirror, or when what
    was downloaded does not have the published checksum; nothing unverified is left in ``folder``.
    """
    if name not in MD5:
        raise UserError(f"jaxlth downloads only {', '.join(MD5)}, not {name!r}")
    os.makedirs(folder, exist_ok=True)
    for file, expected in MD5[name].items():
        path = os.path.join(folder, file)
        if os.path.isfile(path) and md5_of(path) == expected:
            continue
        problems = []
        for base in URLS[name]:
            try:
                _download(opener, base + file, path + ".part")
            except (urllib.error.URLError, OSError, ValueError) as e:
                problems.append(f"{base + file}: {getattr(e, 'reason', e)}")
                continue
            got = md5_of(path + ".part")
            if got != expected:
                os.remove(path + ".part")
                raise UserError(
                    f"the download of {base + file} has MD5 {got}, not the published {expected}; "
                    "nothing was kept (a proxy or a changed mirror?)"
                )
            os.replace(path + ".part", path)
            break
        else:
            raise UserError(
                f"could not download {file} of {name} ({'; '.join(problems)}); put the IDX files in "
                f"{folder} yourself, or set data.dir to a folder holding them"
            )
    if not idx.has_idx_files(folder):
        raise UserError(f"{folder} does not hold the IDX files of {name} after downloading them")
    return folder


def _download(opener: Callable, url: str, path: str) -> None:
    try:
        with opener(url, timeout=TIMEOUT_S) as response, open(path, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise
