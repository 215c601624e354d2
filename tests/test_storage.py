"""Cloud workdirs: every file of a run goes through one path layer (jaxlth.storage, etils.epath).

``gs://`` is simulated by serving it from a local folder (no network): a run in
``gs://jaxlth-test/run`` must write config.json, results.csv, markers, figures and (through Orbax)
artifacts and checkpoints there, resume from there, and load back with ``jaxlth.results``.
"""

import os

import jax
import numpy as np
import pytest
from etils import epath

from jaxlth import checkpoint, experiments, results, storage
from tests.conftest import tiny_config


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
    """``gs://BUCKET/...`` served from ``tmp_path/gcs/BUCKET/...`` (jaxlth's own files through
    :func:`jaxlth.storage._remote`, Orbax's through :func:`jaxlth.checkpoint._orbax_path`);
    returns that local root."""
    root = str(tmp_path / "gcs")
    os.makedirs(root)

    def local(path):
        path = str(path)
        return os.path.join(root, path[len("gs://") :]) if path.startswith("gs://") else path

    monkeypatch.setattr(storage, "_remote", lambda path: epath.Path(local(path)))
    monkeypatch.setattr(checkpoint, "_orbax_path", local)  # Orbax's own gs:// support is not ours to test
    yield root


def test_the_storage_layer_round_trips_text_appends_folders_and_globs(fake_gcs):
    storage.makedirs("gs://b/run/plots")
    storage.write_text("gs://b/run/config.json", "{}")
    storage.append_text("gs://b/run/results.csv", "a,b\n")
    storage.append_text("gs://b/run/results.csv", "1,2\n")
    assert storage.read_text("gs://b/run/results.csv") == "a,b\n1,2\n"
    assert storage.first_line("gs://b/run/results.csv") == "a,b\n"
    assert (
        storage.isdir("gs://b/run")
        and storage.isfile("gs://b/run/config.json")
        and not storage.isdir("gs://b/run/config.json")
    )
    assert sorted(storage.listdir("gs://b/run")) == ["config.json", "plots", "results.csv"]
    storage.replace("gs://b/run/config.json", "gs://b/run/moved.json")
    assert not storage.exists("gs://b/run/config.json") and storage.exists("gs://b/run/moved.json")
    assert storage.glob("gs://b/*") == ["gs://b/run"]
    assert os.path.isfile(os.path.join(fake_gcs, "b", "run", "results.csv"))  # it really went to the bucket


def test_a_run_in_a_cloud_workdir_writes_resumes_and_loads_there(fake_gcs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    workdir = "gs://jaxlth-test/run"
    config = tiny_config("lottery", **{"lottery.levels": 1, "lottery.branches": ()})
    experiments.run(config, workdir)
    local = os.path.join(fake_gcs, "jaxlth-test", "run")
    for name in ("config.json", "results.csv", "finished.json", "artifacts/imp/level_01/mask", "plots"):
        assert os.path.exists(os.path.join(local, name)), name
    assert sorted(os.listdir(tmp_path)) == ["gcs"]
    run = results.load(workdir)
    table = run.table
    assert set(table["level"]) == {0, 1} and run.levels() == [0, 1]
    kept = [np.asarray(m) for m in jax.tree.leaves(run.mask(1))]
    np.testing.assert_allclose(sum(m.sum() for m in kept) / sum(m.size for m in kept), 0.8, atol=1e-3)

    reference = str(tmp_path / "local")
    experiments.run(config, reference)
    for a, b in zip(jax.tree.leaves(results.load(reference).network(1)), jax.tree.leaves(run.network(1))):
        np.testing.assert_array_equal(a, b)  # the same run, bitwise, wherever it is saved

    before = storage.read_text(f"{workdir}/results.csv")
    experiments.run(config, workdir)  # a rerun finds everything done
    assert storage.read_text(f"{workdir}/results.csv") == before
    assert len(results.load_many("gs://jaxlth-test/*")) == len(table)


def test_a_workdir_whose_file_system_cannot_be_reached_is_one_sentence(tmp_path, monkeypatch):
    """An unknown scheme, and a known one whose client fails (here: its file system raises), stop the run
    before anything is written."""
    from jaxlth.errors import UserError

    with pytest.raises(UserError, match=r"^foo://bucket/run: no file system for foo:// paths"):
        experiments.run(tiny_config(), "foo://bucket/run")

    def unreachable(path):
        raise ImportError("Please install gcsfs to access Google Storage")

    monkeypatch.setattr(storage, "_remote", lambda path: type("P", (), {"exists": unreachable})())
    with pytest.raises(UserError, match=r"^gs://bucket/run cannot be reached \(ImportError: Please install gcsfs"):
        experiments.run(tiny_config(), "gs://bucket/run")
