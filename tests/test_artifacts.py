"""Artifacts (``jaxlth.checkpoint.save_artifact``/``load_artifact``): one safetensors file per folder, read back
as Orbax reads back what it saved, so artifacts of earlier versions (Orbax folders) and new ones mix in a run."""

import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from jaxlth import checkpoint
from jaxlth.errors import UserError

TREES = {
    "nested dicts": {"params": {"Dense_0": {"kernel": np.ones((2, 3), np.float32), "bias": np.arange(3)}}},
    "lists and tuples": {"l": [np.ones(2), np.zeros(3)], "t": (np.ones(2, np.int8), np.zeros((1, 3)))},
    "None, empty dict and list": {"n": None, "e": {}, "l": [], "x": np.ones(1)},
    "python and numpy scalars": {"i": 3, "f": 2.5, "b": True, "ni": np.int32(3), "nf": np.float32(2.5)},
    "masks, bfloat16, 0-d": {"m": np.array([True, False]), "w": np.ones(2, ml_dtypes.bfloat16), "z": np.array(7)},
    "jax arrays, digit keys": {"0": jnp.arange(4.0), "1": {"10": jnp.ones((2, 2), jnp.int32)}},
    "a list at the top": [np.ones(1), {"a": np.float16(1.5)}],
}


def described(tree):
    """Types, dtypes, shapes and values of every node: equal only for the same tree, container types included."""
    if isinstance(tree, dict):
        return ("dict", {k: described(v) for k, v in tree.items()})
    if isinstance(tree, (list, tuple)):
        return (type(tree).__name__, [described(x) for x in tree])
    if tree is None:
        return None
    assert isinstance(tree, np.ndarray), type(tree)
    return (str(tree.dtype), tree.shape, tree.tobytes())


@pytest.mark.parametrize("name", list(TREES))
def test_an_artifact_reads_back_as_orbax_reads_back_what_it_saved(tmp_path, name):
    ocp = checkpoint._orbax()
    orbax_folder = str(tmp_path / "orbax")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(orbax_folder, TREES[name])
        checkpointer.wait_until_finished()
    with ocp.StandardCheckpointer() as checkpointer:
        by_orbax = jax.tree.map(np.asarray, checkpointer.restore(orbax_folder))
    checkpoint.save_artifact(str(tmp_path / "new"), TREES[name])
    assert os.listdir(tmp_path / "new") == [checkpoint.ARRAYS_FILE]
    assert described(checkpoint.load_artifact(str(tmp_path / "new"))) == described(by_orbax)
    assert described(checkpoint.load_artifact(orbax_folder)) == described(by_orbax)  # an earlier version's artifact


def test_saving_over_an_orbax_artifact_replaces_it(tmp_path):
    folder = str(tmp_path / "final")
    with checkpoint._orbax().StandardCheckpointer() as checkpointer:
        checkpointer.save(folder, {"old": np.zeros(3)})
        checkpointer.wait_until_finished()
    assert checkpoint.artifact_exists(folder)
    new = {"new": np.ones(2), "empty": np.zeros((0, 3), np.float32)}  # Orbax refuses zero-size arrays
    checkpoint.save_artifact(folder, new)
    assert os.listdir(folder) == [checkpoint.ARRAYS_FILE]
    assert described(checkpoint.load_artifact(folder)) == described(new)


def test_a_damaged_or_missing_artifact_is_one_sentence_and_text_is_refused(tmp_path):
    folder = str(tmp_path / "mask")
    checkpoint.save_artifact(folder, {"kernel": np.ones((8, 8), bool)})
    file = os.path.join(folder, checkpoint.ARRAYS_FILE)
    with open(file, "r+b") as f:
        f.truncate(os.path.getsize(file) - 10)
    with pytest.raises(UserError, match=f"the checkpoint {folder} cannot be read"):
        checkpoint.load_artifact(folder)
    from jaxlth.weights import write_safetensors

    write_safetensors(file, {"kernel": np.ones(3)})  # a safetensors file, but without the tree's structure
    with pytest.raises(UserError, match="holds no tree structure"):
        checkpoint.load_artifact(folder)
    with pytest.raises(UserError, match="there is no saved artifact"):
        checkpoint.load_artifact(str(tmp_path / "nothing"))
    assert not checkpoint.artifact_exists(str(tmp_path / "nothing"))
    with pytest.raises(TypeError, match="numeric arrays"):
        checkpoint.save_artifact(str(tmp_path / "text"), {"name": "lenet"})


def test_distilled_data_of_an_earlier_version_is_read_from_its_orbax_folder(tmp_path):
    from jaxlth.data import distilled

    arrays = {"images": np.ones((1, 4, 2, 2, 1), np.float32), "labels": np.arange(4, dtype=np.int32)[None], "lr": 0.1}
    with checkpoint._orbax().StandardCheckpointer() as checkpointer:
        checkpointer.save(distilled.artifact_path(str(tmp_path)), arrays)
        checkpointer.wait_until_finished()
    old = distilled.read(str(tmp_path))
    checkpoint.save_artifact(distilled.artifact_path(str(tmp_path)), arrays)
    assert described(distilled.read(str(tmp_path))) == described(old)
    assert described(old) == described(jax.tree.map(np.asarray, arrays))
