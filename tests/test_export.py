"""``run.export``: one pruned network as a folder that jax alone loads (jaxlth/export/).

The run is a lottery workdir written by hand (config, IMP masks and trained networks of levels 0 and 1,
two replicates): ``Run`` reads artifacts, so a hand-written one exercises the same path as a trained
one without training it here."""

import functools
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from jaxlth import checkpoint, fields, models, results, weights
from jaxlth import export as export_lib
from jaxlth.errors import UserError
from jaxlth.layout import Layout
from jaxlth.training import setup as setup_lib
from jaxlth.training.functions import Spec
from tests.conftest import tiny_config

KEPT = {0: 1.0, 1: 0.3}  # level: the fraction of hidden_0 and hidden_1 kept (output: never pruned)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("export") / "run")
    config = tiny_config("lottery", replicates=2, **{"lottery.levels": 1, "lottery.branches": ()})
    layout = Layout(path)
    os.makedirs(path)
    with open(layout.config_file, "w") as f:
        json.dump(fields.to_dict(config), f)
    model = models.get_model("lenet", 10, widths=(32, 16))
    keys = jax.random.split(jax.random.key(0), 2)
    params = jax.tree.map(np.asarray, jax.vmap(lambda k: model.init(k, jnp.zeros((1, 28, 28, 1)), train=False))(keys))
    params = params["params"]
    rng = np.random.default_rng(0)
    rows = []
    for level, kept in KEPT.items():
        mask = {n: {"kernel": rng.random(params[n]["kernel"].shape) < kept} for n in ("hidden_0", "hidden_1")}
        final = {n: dict(p) for n, p in params.items()}
        for n, m in mask.items():  # trained networks hold 0 where they are pruned (masked at every step)
            final[n]["kernel"] = np.where(m["kernel"], params[n]["kernel"] * (1 + level), 0).astype(np.float32)
        checkpoint.save_artifact(layout.level_artifact("imp", level, "mask"), mask)
        checkpoint.save_artifact(layout.level_artifact("imp", level, "final"), {"params": final})
        rows.append(dict(experiment="lottery", arm="imp", level=level, replicate=0, density=kept, step=16))
    table = pd.DataFrame(rows).assign(epoch=2.0, split="test", metric="accuracy", value=0.5, prune_fraction=0.2)
    table.to_csv(layout.results_file, index=False)
    return path


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory) -> str:
    return results.load(workdir).export(str(tmp_path_factory.mktemp("out") / "net"), level=1, replicate=1, sparse=True)


def load_module(folder: str):
    """The folder's own ``load.py``, imported as a module."""
    spec = importlib.util.spec_from_file_location("exported_load", os.path.join(folder, "load.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_files_hold_the_run_network_and_mask(workdir, exported):
    run = results.load(workdir)
    mask, params = run.mask(1, 1), run.params(1, 1)
    saved_mask = load_file(os.path.join(exported, "mask.safetensors"))
    assert saved_mask.keys() == {"params/hidden_0/kernel", "params/hidden_1/kernel"}
    saved = load_file(os.path.join(exported, "model.safetensors"))
    assert weights.detect(saved) == "jaxlth"  # model.pretrained reads it back
    for name in ("hidden_0", "hidden_1"):
        kept = saved_mask[f"params/{name}/kernel"]
        assert kept.dtype == bool and np.array_equal(kept, mask[name]["kernel"])
        kernel = saved[f"params/{name}/kernel"]
        assert np.all(kernel[~kept] == 0) and np.array_equal(kernel[kept], params[name]["kernel"][kept])
    assert np.array_equal(saved["params/output/kernel"], params["output"]["kernel"])
    info = json.load(open(os.path.join(exported, "export.json")))
    total = sum(m["kernel"].size for m in mask.values())
    assert info["density"] == pytest.approx(sum(m["kernel"].sum() for m in mask.values()) / total)
    assert 0.2 < info["density"] < 0.4
    assert info["source"] == dict(workdir=workdir, experiment="lottery", arm="imp", level=1, replicate=1, which="final")
    assert info["input"] == {"shape": [28, 28, 1], "dtype": "uint8", "batch": "any"}
    assert info["config"] == run.config and set(info["bcoo"]) == {"params/hidden_0/kernel", "params/hidden_1/kernel"}


def test_the_exported_forward_gives_jaxlths_evaluation(workdir, exported):
    """Bitwise the logits of jaxlth's per-replicate evaluation function for the same batch; the test split's
    loss and accuracy as ``Program.evaluate`` computes them (its batches are summed in another order: loss to
    1e-6)."""
    run = results.load(workdir)
    setup = setup_lib.build(ml_collections.ConfigDict(run.config))
    program, data = setup.program, setup.dataset
    params = jax.tree.map(jnp.asarray, run.params(1, 1))
    images, labels = data.test_images, data.test_labels
    variables, forward = load_module(exported).load(exported)
    logits = np.asarray(forward(variables, images))

    def ours(p, x, y):
        return program.per_example_loss(p, {}, program.preprocess(x), y)

    losses, expected, _ = jax.jit(ours)(params, images, labels)
    assert np.array_equal(logits, np.asarray(expected))
    loss, accuracy = program.evaluate(jax.tree.map(lambda a: a[None], params), {}, jnp.asarray(images), labels)
    assert float(accuracy[0]) == np.mean(logits.argmax(-1) == labels)
    assert float(loss[0]) == pytest.approx(float(np.mean(losses)), rel=1e-6)
    # Any batch size; one image's logits to the last bits only: XLA may multiply one row with another kernel
    # (matrix-vector) than a batch, and does so at --xla_backend_optimization_level=1, the suite's level.
    np.testing.assert_allclose(np.asarray(forward(variables, images[3:4])), logits[3:4], rtol=1e-6, atol=1e-6)


def test_the_bcoo_kernels_hold_the_kept_weights_and_compute_the_same_logits(workdir, exported):
    module = load_module(exported)
    dense_vars, dense = module.load(exported)
    sparse_vars, sparse = module.load(exported, sparse=True)
    mask = results.load(workdir).mask(1, 1)
    for name in ("hidden_0", "hidden_1"):
        kernel = sparse_vars["params"][name]["kernel"]
        assert isinstance(kernel, jax.experimental.sparse.BCOO)
        assert kernel.nse == mask[name]["kernel"].sum()
        assert np.array_equal(kernel.todense(), dense_vars["params"][name]["kernel"])
    assert isinstance(sparse_vars["params"]["output"]["kernel"], jax.Array)  # not pruned: stays dense
    images = np.random.default_rng(1).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(sparse(sparse_vars, images), dense(dense_vars, images), rtol=1e-5, atol=1e-5)


STANDALONE = """
import sys
sys.modules.update(jaxlth=None, flax=None, optax=None)  # importing any of them now fails
sys.path[:] = [p for p in sys.path if not __import__("os").path.isdir(__import__("os").path.join(p, "jaxlth"))]
import numpy as np
from load import load
images = np.load(sys.argv[1])
dense_vars, dense = load(".")
sparse_vars, sparse = load(".", sparse=True)
np.savez(sys.argv[2], dense=dense(dense_vars, images), sparse=sparse(sparse_vars, images))
sys.argv = ["load.py"]
__import__("runpy").run_path("load.py", run_name="__main__")  # python load.py: the quick check
"""


def test_load_py_runs_without_jaxlth_or_flax(exported, tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", STANDALONE, str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
        cwd=exported,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    density = json.load(open(os.path.join(exported, "export.json")))["density"]
    assert f"LeNet, density {density:.4f}: logits (2, 10) float32" in proc.stdout
    out = np.load(tmp_path / "out.npz")
    variables, forward = load_module(exported).load(exported)
    assert np.array_equal(out["dense"], np.asarray(forward(variables, images)))
    np.testing.assert_allclose(out["sparse"], out["dense"], rtol=1e-5, atol=1e-5)


def test_a_network_with_batch_statistics_exports_its_masked_weights(tmp_path):
    """``write`` applies the mask (pruned weights become 0), keeps the BatchNorm statistics, and leaves
    convolutions dense in the BCOO forward pass (only the pruned Dense head is sparse)."""
    model = models.get_model("resnet_cifar", 10, depth=8, width=4)
    spec = Spec(8, 1, 8, (8, 8, 3), (0.5, 0.4, 0.3), (0.2, 0.3, 0.4), 255.0, "none", 8)
    init = jax.jit(functools.partial(model.init, train=False))  # (eager, every op of init compiles alone)
    variables = jax.tree.map(np.asarray, init(jax.random.key(1), jnp.zeros((1, 8, 8, 3))))
    variables["batch_stats"] = jax.tree.map(lambda s: s + 0.25, variables["batch_stats"])
    rng = np.random.default_rng(3)
    mask = {"output": {"kernel": rng.random(variables["params"]["output"]["kernel"].shape) < 0.5}}
    mask["stem_conv"] = {"kernel": rng.random(variables["params"]["stem_conv"]["kernel"].shape) < 0.5}
    folder = export_lib.write(str(tmp_path / "net"), model, spec, variables, mask, np.dtype(np.uint8), sparse=True)
    info = json.load(open(os.path.join(folder, "export.json")))
    assert info["bcoo"] == {"params/output/kernel": [16, 10]}
    loaded, forward = load_module(folder).load(folder)
    assert np.all(np.asarray(loaded["params"]["stem_conv"]["kernel"])[~mask["stem_conv"]["kernel"]] == 0)
    masked = jax.tree.map(lambda a: a, variables)
    for name, m in mask.items():
        masked["params"][name]["kernel"] = np.where(m["kernel"], masked["params"][name]["kernel"], 0)
    images = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    expected = jax.jit(export_lib.forward_of(model, spec))(masked["params"], masked["batch_stats"], images)
    np.testing.assert_array_equal(forward(loaded, images), expected)
    sparse_vars, sparse = load_module(folder).load(folder, sparse=True)
    np.testing.assert_allclose(sparse(sparse_vars, images), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "options, says",
    [
        (dict(level=7), "level 7 of arm 'imp' is not finished"),
        (dict(arm="random_reinit"), "no finished level of arm 'random_reinit'"),
        (dict(replicate=2), r"replicate must be in \[0, 2\)"),
        (dict(replicate="0"), "replicate must be one replicate's number"),
        (dict(which="init"), "which must be 'final' or 'rewind'"),
    ],
)
def test_a_bad_choice_is_one_sentence_and_writes_nothing(workdir, tmp_path, options, says):
    with pytest.raises(UserError, match=says):
        results.load(workdir).export(str(tmp_path / "net"), **options)
    assert not os.path.exists(tmp_path / "net") and os.listdir(tmp_path) == []


def test_an_existing_folder_that_holds_anything_is_refused(workdir, tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not an empty folder"):
        results.load(workdir).export(str(tmp_path / "net"))
    assert os.listdir(tmp_path / "net") == ["notes.txt"]


def test_write_refuses_a_mask_of_another_network_and_bcoo_without_a_pruned_dense_layer(tmp_path):
    model = models.get_model("conv2", 10)
    spec = Spec(8, 1, 8, (8, 8, 3), (0.5,) * 3, (0.25,) * 3, 255.0, "none", 8)
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(2), jnp.zeros((1, 8, 8, 3)))
    variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    conv = next(name for name in variables["params"] if variables["params"][name]["kernel"].ndim == 4)
    mask = {conv: {"kernel": np.ones(variables["params"][conv]["kernel"].shape, bool)}}
    with pytest.raises(UserError, match="has no pruned Dense layer to hold as BCOO"):
        export_lib.write(str(tmp_path / "a"), model, spec, variables, mask, np.dtype(np.uint8), sparse=True)
    with pytest.raises(UserError, match="fits no parameter of the network"):
        export_lib.write(str(tmp_path / "b"), model, spec, variables, {conv: {"kernel": np.ones((3, 3), bool)}}, "u1")
    assert os.listdir(tmp_path) == []
