"""Where a dataset's files are looked for: ``data.dir``, ``$JAXLTH_DATA_DIR`` and Debian's folders, each
itself and through its ``<name>`` subfolders; the first holding the dataset in its local format wins."""

from __future__ import annotations

import os

from jaxlth.data.sources import cifar_pickle, idx

# Where Debian/Ubuntu packages put the files (`apt-get install dataset-fashion-mnist`).
DEBIAN_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}


def name_variants(name: str) -> list[str]:
    """Folder names a dataset may sit under: ``fashion_mnist`` and ``fashion-mnist``, ...."""
    variants = [name, name.replace("_", "-")]
    if name.startswith("cifar"):
        variants.append("cifar-" + name[len("cifar") :])
    return list(dict.fromkeys(variants))


def search_bases(name: str, data_dir: str = "") -> list[tuple[str, str]]:
    """``(label, folder)`` for the places searched, in order: data.dir, $JAXLTH_DATA_DIR, Debian.

    Each folder is searched itself and through its ``<name>`` subfolders (``name_variants``).
    An unset data.dir or $JAXLTH_DATA_DIR comes back with folder "".
    """
    env = os.environ.get("JAXLTH_DATA_DIR", "")
    bases = [
        ("data.dir", os.path.expanduser(data_dir) if data_dir else ""),
        ("$JAXLTH_DATA_DIR", os.path.expanduser(env) if env else ""),
    ]
    if name in DEBIAN_DIRS:
        bases.append(("Debian's folder", DEBIAN_DIRS[name]))
    return bases


def search_dirs(name: str, data_dir: str = "") -> list[str]:
    """Every folder searched for ``name``'s files, in order."""
    dirs = []
    for label, base in search_bases(name, data_dir):
        if base:
            dirs.append(base)
            if label != "Debian's folder":
                dirs += [os.path.join(base, v) for v in name_variants(name)]
    return dirs


def describe(name: str, data_dir: str) -> str:
    """The places searched, for an error message."""
    parts = []
    for label, base in search_bases(name, data_dir):
        if not base:
            parts.append(f"{label} (not set)")
        elif label == "Debian's folder":
            parts.append(base)
        else:
            subs = " or ".join(f"{v}/" for v in name_variants(name))
            parts.append(f"{label}={base} (and its {subs} subfolder)")
    return ", ".join(parts)


def find_local(name: str, data_dir: str = "") -> str | None:
    """The first folder holding ``name`` in its local format (IDX or CIFAR pickles), or None."""
    for directory in search_dirs(name, data_dir):
        if name in ("mnist", "fashion_mnist") and idx.has_idx_files(directory):
            return directory
        if name in ("cifar10", "cifar100"):
            found = cifar_pickle.find_cifar_dir(directory, name)
            if found is not None:
                return found
    return None
