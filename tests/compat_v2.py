"""The runs of tests/fixtures/v2 made again by today's code, and their comparison with the recordings
(shared by tests/test_compat.py and ``python tests/compat_v2.py DIR [NAME ...]``, which prints every
difference). A change that means to change numbers records the runs it changes again:
``python tests/compat_v2.py DIR --record NAME ...`` (and says why in ``versions.json``)."""

import hashlib
import json
import os
import sys

import jax
import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script
from tests.conftest import same_xla  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "v2")
TINY = os.path.join(ROOT, "tests", "configs", "tiny.py")
SPEC = json.load(open(os.path.join(FIXTURES, "runs.json")))
VERSIONS = json.load(open(os.path.join(FIXTURES, "versions.json")))
SAME_XLA = same_xla(VERSIONS)  # bitwise equality holds for the same XLA on the same kind of CPU
NAMES = [name for name, _, _ in SPEC["runs"]]


def config_of(name: str, base: str):
    """The config of the fixture run ``name``, its sources in ``base``."""
    from jaxlth import config as config_lib

    _, arg, overrides = next(r for r in SPEC["runs"] if r[0] == name)
    changes = dict(SPEC["common"])
    for key, value in overrides.items():
        changes[key] = (
            value.format(**{n: os.path.join(base, n) for n in NAMES})
            if isinstance(value, str) and "{" in value
            else value
        )
    return config_lib.from_file(f"{TINY}:{arg}", **changes)


def make(base: str, names=None) -> None:
    """Runs the fixture runs (all, or ``names`` and the runs before them) into ``base``."""
    from jaxlth import experiments

    last = max(NAMES.index(n) for n in names) if names else len(NAMES) - 1
    for name in NAMES[: last + 1]:
        experiments.run(config_of(name, base), os.path.join(base, name))


def statistics(x) -> list[float]:
    """sum |x|, ||x||_2 and sum x * ramp (ramp: -1..1 over the flat array, which tells a permutation) in
    float64: what a leaf is compared by where its bits may differ (another kind of CPU or XLA)."""
    flat = np.asarray(x, dtype=np.float64).ravel()
    ramp = np.linspace(-1.0, 1.0, flat.size) if flat.size > 1 else np.ones(flat.size)
    return [float(np.abs(flat).sum()), float(np.sqrt((flat * flat).sum())), float((flat * ramp).sum())]


def digests(workdir: str) -> dict:
    """``{artifact: {leaf: [dtype, shape, sha256, statistics]}}`` and ``{marker: "marker"}`` of a workdir."""
    from jaxlth import checkpoint

    base, out = os.path.join(workdir, "artifacts"), {}
    for folder, dirs, files in os.walk(base):
        name = os.path.relpath(folder, base)
        if checkpoint.artifact_exists(folder):
            leaves = jax.tree_util.tree_flatten_with_path(checkpoint.load_artifact(folder))[0]
            out[name] = {
                jax.tree_util.keystr(path): [
                    str(np.asarray(x).dtype),
                    list(np.shape(x)),
                    hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(),
                    statistics(x),
                ]
                for path, x in leaves
            }
            dirs.clear()
            continue
        for f in files:
            out[os.path.relpath(os.path.join(folder, f), base)] = "marker"
    return dict(sorted(out.items()))


def tidy(path: str) -> pd.DataFrame:
    """A results table as sorted text cells (values compared exactly, as written)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = table[sorted(table.columns)]
    return table.sort_values(list(table.columns)).reset_index(drop=True)


def differences(name: str, workdir: str) -> list[str]:
    """What differs between the recording of ``name`` and ``workdir`` (empty: nothing)."""
    out = []
    old = json.load(open(os.path.join(FIXTURES, name, "digests.json")))
    new = digests(workdir)
    if sorted(old) != sorted(new):
        out.append(f"{name}: artifacts {sorted(set(old) ^ set(new))} differ")
    for artifact in sorted(set(old) & set(new)):
        if old[artifact] == "marker" or new[artifact] == "marker":
            same = old[artifact] == new[artifact]
        elif SAME_XLA:
            same = {k: v[:3] for k, v in old[artifact].items()} == {k: v[:3] for k, v in new[artifact].items()}
        else:
            same = {k: v[:2] for k, v in old[artifact].items()} == {k: v[:2] for k, v in new[artifact].items()} and all(
                np.allclose(old[artifact][k][3], new[artifact][k][3], rtol=1e-4, atol=1e-4) for k in old[artifact]
            )
        if not same:
            out.append(f"{name}: artifact {artifact} differs")
    a, b = tidy(os.path.join(FIXTURES, name, "results.csv")), tidy(os.path.join(workdir, "results.csv"))
    added = [c for c in b.columns if c not in a.columns and (b[c] == "").all()]  # a later field, unused here
    b = b.drop(columns=added)  # constant columns: the rows' order is unchanged
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        out.append(f"{name}: results.csv columns {list(a.columns)} / {list(b.columns)}, rows {len(a)} / {len(b)}")
    elif SAME_XLA and not a.equals(b):
        diff = (a != b).any(axis=1)
        out.append(
            f"{name}: {int(diff.sum())} rows of results.csv differ, e.g. {a[diff].iloc[0].to_dict()} / "
            f"{b[diff].iloc[0].to_dict()}"
        )
    elif not SAME_XLA:
        keys = [c for c in a.columns if c != "value"]
        if not a[keys].equals(b[keys]):
            out.append(f"{name}: the rows' coordinates differ")
        elif not np.allclose(a["value"].astype(float), b["value"].astype(float), rtol=1e-4, atol=1e-5, equal_nan=True):
            out.append(f"{name}: values differ beyond float tolerance")
    return out


def record(name: str, workdir: str) -> None:
    """Writes the run ``name`` of ``workdir`` as its recording (rows and artifact digests)."""
    import shutil

    shutil.copy(os.path.join(workdir, "results.csv"), os.path.join(FIXTURES, name, "results.csv"))
    with open(os.path.join(FIXTURES, name, "digests.json"), "w") as f:
        json.dump(digests(workdir), f, indent=1)


if __name__ == "__main__":
    import tempfile

    base = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    chosen = [n for n in sys.argv[2:] if n != "--record"] or None
    make(base, chosen)
    if "--record" in sys.argv:
        for name in chosen or NAMES:
            record(name, os.path.join(base, name))
    found = [d for name in (chosen or NAMES) for d in differences(name, os.path.join(base, name))]
    print("\n".join(found) or "every run equals its recording")
