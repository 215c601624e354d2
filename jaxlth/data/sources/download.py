"""Downloading datasets without TensorFlow (Colab's TPU runtimes, any machine with a network): the
original MNIST and Fashion-MNIST IDX files and the CIFAR-10/100 python-version tarballs, each checked
against its published MD5 before it is kept.

The files go to a cache folder (``data.dir``, else ``$JAXLTH_DATA_DIR/<name>``, else
``~/.cache/jaxlth/datasets/<name>``) and are read there as any IDX or CIFAR folder; a file already there
with the right checksum is not fetched again. A download is written to ``<file>.part`` and renamed
only once its checksum matches, so a failed or corrupted download caches nothing. A CIFAR tarball is
extracted only if every member is a plain file or folder that stays inside the extraction folder (else
the whole archive is refused), into a temporary folder in the cache whose ``cifar-10-batches-py`` /
``cifar-100-python`` is renamed into place once complete; :mod:`cifar_pickle` then reads it.

Checksums: the MD5s of the gzipped files as published with the datasets and used by torchvision's
``MNIST`` / ``FashionMNIST`` (Fashion-MNIST: Zalando Research's README), and the MD5s of the CIFAR
tarballs listed on https://www.cs.toronto.edu/~kriz/cifar.html (as torchvision's ``CIFAR10`` /
``CIFAR100`` check them).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from typing import Callable

from jaxlth.data.sources import cifar_pickle, idx
from jaxlth.errors import UserError

# Mirrors tried in order for each file.
URLS = {
    "fashion_mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
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
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
}
TIMEOUT_S = 60
CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


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


def fetch(name: str, folder: str) -> tuple[str, str]:
    """Downloads what ``name`` lacks into ``folder``; returns ``(source, folder to read)`` for ``resolve``."""
    if name in cifar_pickle.LAYOUTS:
        return "cifar_pickle", fetch_cifar(name, folder)
    return "idx", fetch_idx(name, folder)


def fetch_idx(name: str, folder: str, opener: Callable = urllib.request.urlopen) -> str:
    """Makes ``folder`` hold ``name``'s four IDX files (downloading those missing); returns it.

    Raises UserError (one sentence) when a file cannot be downloaded from any mirror, or when what
    was downloaded does not have the published checksum; nothing unverified is left in ``folder``.
    """
    _check_name(name)
    os.makedirs(folder, exist_ok=True)
    for file, expected in MD5[name].items():
        _fetch_file(name, folder, file, expected, opener, f"put the IDX files in {folder} yourself")
    if not idx.has_idx_files(folder):
        raise UserError(f"{folder} does not hold the IDX files of {name} after downloading them")
    return folder


def fetch_cifar(name: str, folder: str, opener: Callable = urllib.request.urlopen) -> str:
    """Makes ``folder`` hold ``name``'s python-version folder (downloading and extracting the tarball
    unless that folder is already there); returns the folder ``cifar_pickle.load_cifar_dir`` reads.

    Raises UserError (one sentence) when the tarball cannot be downloaded, has the wrong checksum, or
    holds an unsafe or missing member; nothing unverified or half-extracted is left in ``folder``.
    """
    found = cifar_pickle.find_cifar_dir(folder, name)
    if found is not None:
        return found
    _check_name(name)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, cifar_pickle.folder_name(name))
    if os.path.lexists(target):
        raise UserError(f"{target} exists but lacks some CIFAR batch files; delete it and load {name} again")
    ((file, expected),) = MD5[name].items()
    _fetch_file(name, folder, file, expected, opener, f"extract the python version from {CIFAR_PAGE} into {folder}")
    _extract(os.path.join(folder, file), folder, name)
    return target


def _check_name(name: str) -> None:
    if name not in MD5:
        raise UserError(f"jaxlth downloads only {', '.join(MD5)}, not {name!r}")


def _fetch_file(name: str, folder: str, file: str, expected: str, opener: Callable, instead: str) -> None:
    """Makes ``folder/file`` the verified download of ``file`` unless it already has the checksum."""
    path = os.path.join(folder, file)
    if os.path.isfile(path) and md5_of(path) == expected:
        return
    problems = []
    for base in URLS[name]:
        try:
            _download(opener, base + file, path + ".part")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            problems.append(f"{base + file}: {getattr(e, 'reason', None) or e}")
            continue
        got = md5_of(path + ".part")
        if got != expected:
            os.remove(path + ".part")
            raise UserError(
                f"the download of {base + file} has MD5 {got}, not the published {expected}; "
                "nothing was kept (a proxy or a changed mirror?)"
            )
        os.replace(path + ".part", path)
        return
    raise UserError(
        f"could not download {file} of {name} ({'; '.join(problems)}); {instead} yourself, or set data.dir "
        "to a folder holding them"
    )


def _download(opener: Callable, url: str, path: str) -> None:
    try:
        with opener(url, timeout=TIMEOUT_S) as response, open(path, "wb") as out:
            size = 0
            while block := response.read(1 << 20):
                size += out.write(block)
            promised = (response.headers.get("Content-Length") or "").strip()
            if promised.isdigit() and size != int(promised):
                raise ValueError(f"the connection ended after {size} of {promised} bytes")
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise


def _unsafe(member: tarfile.TarInfo, root: str) -> bool:
    """True unless ``member`` is a regular file or folder whose path stays inside ``root``."""
    name = member.name
    if not (member.isreg() or member.isdir()) or not name or "\0" in name:
        return True
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in re.split(r"[\\/]", name):
        return True
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(os.path.join(real_root, name))]) != real_root


def _extract(tarball: str, folder: str, name: str) -> None:
    """Extracts ``tarball``'s CIFAR folder into ``folder``, all or nothing; a tarball that is refused
    (an unsafe member) or unreadable is deleted, so the next load downloads it anew."""
    wanted = cifar_pickle.folder_name(name)
    staging = tempfile.mkdtemp(prefix=".extracting-", dir=folder)
    try:
        problem = ""
        try:
            with tarfile.open(tarball, "r:gz") as archive:
                members = archive.getmembers()
                bad = [m.name for m in members if _unsafe(m, staging)]
                if bad:
                    problem = (
                        f"it holds {bad[0][:200]!r}, which is not a plain file or folder inside the archive "
                        "(a link, a device, an absolute path or '..'), so nothing was extracted"
                    )
                else:
                    _extract_members(archive, members, staging)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            problem = f"it could not be extracted ({type(e).__name__}: {e})"
        if not problem and not cifar_pickle.is_cifar_dir(os.path.join(staging, wanted), name):
            problem = f"it does not hold {wanted}/ with every batch file of {name}"
        if problem:
            os.remove(tarball)
            raise UserError(f"Refused the CIFAR tarball {tarball}: {problem}; it was deleted.")
        os.replace(os.path.join(staging, wanted), os.path.join(folder, wanted))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_members(archive: tarfile.TarFile, members: list, root: str) -> None:
    """``extractall`` with tarfile's ``data`` filter where this Python has it (3.11.4+, 3.12+)."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(root, members=members, filter="data")
        return
    for member in members:  # the checks of _unsafe, and no setuid or odd permission bits
        member.mode = 0o755 if member.isdir() else 0o644
    archive.extractall(root, members=members)
