"""The landscape experiment and its pure pieces: curvature at IMP's trained networks, projections."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxlth import experiments, plots, results
from jaxlth.analysis import curvature
from jaxlth.analysis import projections as measures
from jaxlth.errors import UserError
from jaxlth.experiments.landscape import run as landscape_experiment
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import setup as setup_lib
from tests.conftest import assert_same_rows, tiny_config

NARROW = {"model.options.widths": (4, 4), "replicates": 2}  # ~3,200 weights: the exact Hessian fits in memory
MEASURE = {
    "landscape.examples": 128,
    "landscape.chunk": 64,
    "landscape.top_k": 2,
    "landscape.lanczos_iterations": 30,
    "landscape.trace_probes": 16,
    "landscape.alphas": 3,
    "landscape.projection_fractions": (0.2, 0.5),
}


def landscape_config(source: str, **changes):
    return tiny_config("landscape", **{**NARROW, **MEASURE, "landscape.source_workdir": source, **changes})


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    base = tmp_path_factory.mktemp("landscape")
    source = str(base / "source")
    experiments.run(tiny_config("lottery", **NARROW, **{"lottery.levels": 1, "lottery.branches": ()}), source)
    workdir = str(base / "landscape")
    experiments.run(landscape_config(source), workdir)
    return results.load(source), results.load(workdir), landscape_config(source)


def exact_hessian(config, run, level, replicate):
    """The dense Hessian of the landscape's training-subset loss at a source network, and its flat mask."""
    setup = setup_lib.build(config)
    network = jax.tree.map(jnp.asarray, run.network(level, replicate))
    mask = jax.tree.map(jnp.asarray, run.mask(level, replicate))
    data = setup.data
    take = jax.random.permutation(jax.random.PRNGKey(2), data.train_images.shape[0])[:128]
    loss = curvature.subset_loss(
        setup.program, network["batch_stats"], data.train_images[take], data.train_labels[take], chunk=64
    )
    flat, unravel = ravel_pytree(network["params"])
    hessian = np.asarray(jax.hessian(lambda x: loss(unravel(x)))(flat), np.float64)
    keep = np.asarray(curvature.subspace_vector(network["params"], mask)) > 0
    return hessian, keep, setup, network, mask


def test_eigenvalues_and_trace_are_those_of_the_masked_hessian(measured):
    source, run, config = measured
    table = run.table
    for level in (0, 1):
        hessian, keep, *_ = exact_hessian(config, source, level, replicate=1)
        exact = np.linalg.eigvalsh(hessian[np.ix_(keep, keep)])[::-1]
        rows = table[(table.metric == "eigenvalue") & (table.level == level) & (table.replicate == 1)]
        top = rows.sort_values("rank")["value"].to_numpy()
        np.testing.assert_allclose(top, exact[:2], rtol=1e-3)
        bound = table[(table.metric == "eigen_residual") & (table.level == level) & (table.replicate == 1)]
        residuals = bound.sort_values("rank")["value"].to_numpy()
        assert np.all(np.abs(top[:, None] - exact[None]).min(axis=1) <= residuals), (top, exact[:3], residuals)
        trace = table[(table.metric == "trace") & (table.level == level) & (table.replicate == 1)]["value"].item()
        stderr = table[(table.metric == "trace_stderr") & (table.level == level) & (table.replicate == 1)]
        assert abs(trace - exact.sum()) <= 4 * stderr["value"].item() + 1e-3 * abs(exact.sum())
        dim = table[(table.metric == "subspace_dim") & (table.level == level) & (table.replicate == 1)]
        assert dim["value"].item() == keep.sum()


def test_projection_segment_ends_at_the_trained_and_the_pruned_network(measured):
    source, run, config = measured
    table = run.table
    _, _, setup, network, mask = exact_hessian(config, source, 1, replicate=0)
    data = setup.data
    loss, accuracy = setup.program.evaluate_one(
        network["params"], network["batch_stats"], data.test_images, data.test_labels
    )
    rows = table[(table.split == "test") & (table.level == 1) & (table.replicate == 0) & (table.metric == "error")]
    start = rows[rows.alpha == 0.0]["value"].to_numpy()
    np.testing.assert_allclose(start, 1.0 - float(accuracy), atol=1e-6)  # alpha = 0 for every p
    for p in (0.2, 0.5):
        pruned_mask = measures.projection_masks(network["params"], mask, jnp.asarray([p]), "global")
        pruned_mask = jax.tree.map(lambda m: m[0], pruned_mask)
        assert abs(float(mask_lib.density(pruned_mask)) - 0.8 * (1 - p)) < 2e-3
        pruned = mask_lib.apply(network["params"], pruned_mask)
        _, acc = setup.program.evaluate_one(pruned, network["batch_stats"], data.test_images, data.test_labels)
        end = rows[(rows.alpha == 1.0) & (rows.projection == p)]["value"].item()
        assert end == pytest.approx(1.0 - float(acc), abs=1e-6)


def test_quadratic_change_is_the_taylor_expansion():
    model = nn.Sequential([nn.Dense(5), nn.tanh, nn.Dense(3)])
    x = jax.random.normal(jax.random.PRNGKey(0), (32, 4))
    y = jax.random.randint(jax.random.PRNGKey(1), (32,), 0, 3)
    params = model.init(jax.random.PRNGKey(2), x)["params"]

    def loss(p):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    mask = {"layers_0": {"kernel": jnp.ones((4, 5), bool)}, "layers_2": {"kernel": jnp.ones((5, 3), bool)}}
    projected = jax.tree.map(lambda m: m[0], measures.projection_masks(params, mask, jnp.asarray([0.3]), "global"))
    delta = measures.projection_delta(params, projected)
    first, second, change = measures.quadratic_change(loss, params, delta)
    flat, unravel = ravel_pytree(params)
    d = ravel_pytree(delta)[0]
    h = jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat)  # one program, not an eager op each
    np.testing.assert_allclose(second, 0.5 * d @ h @ d, rtol=1e-4)
    np.testing.assert_allclose(first, jax.grad(lambda f: loss(unravel(f)))(flat) @ d, rtol=1e-4)
    np.testing.assert_allclose(change, loss(unravel(flat + d)) - loss(params), rtol=1e-5)
    assert int(np.sum(d != 0)) == int(np.ceil(0.3 * 35))  # exactly the pruned weights move


def test_report_and_figures(measured):
    _, run, _ = measured
    text = plots.format_landscape(run.table)
    assert "lambda_max" in text and "err@+0.5" in text
    for name in (plots.EIGENVALUE_FIGURE, plots.PROJECTION_FIGURE, plots.PREDICTION_FIGURE):
        assert os.path.exists(os.path.join(run.workdir, "plots", name))


def test_a_killed_landscape_resumes_to_the_same_rows(measured, tmp_path, monkeypatch):
    source, run, config = measured
    original, calls = landscape_experiment._measure_level, []

    def dies_on_the_second_level(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill between two levels
        return original(*args, **kwargs)

    monkeypatch.setattr(landscape_experiment, "_measure_level", dies_on_the_second_level)
    workdir = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        experiments.run(config, workdir)
    monkeypatch.setattr(landscape_experiment, "_measure_level", original)
    experiments.run(config, workdir)
    a, b = run.table, results.load(workdir).table
    columns = [c for c in a.columns if c != "value"] + ["value"]
    assert_same_rows(a, b, columns)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"landscape.projection_fractions": (0.2, 1.5)}, "projection_fractions must be fractions in (0, 1)"),
        ({"landscape.top_k": 40}, "cannot exceed landscape.lanczos_iterations"),
        (
            {"landscape.lanczos_iterations": 5000, "landscape.top_k": 2},
            "exceeds the dimension of the smallest subspace",
        ),
        ({"landscape.bn_mode": "train"}, "unknown landscape.bn_mode"),
        ({"landscape.levels": (7,)}, "are not finished"),
    ],
)
def test_bad_settings_are_one_sentence(measured, tmp_path, changes, fragment):
    source, _, _ = measured
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        experiments.run(landscape_config(source.workdir, **changes), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_a_source_that_is_not_a_lottery_run_is_refused(tmp_path):
    train = str(tmp_path / "train")
    experiments.run(tiny_config(None, **NARROW, **{"train.steps": "1ep"}), train)
    with pytest.raises(UserError, match="not a lottery run"):
        experiments.run(landscape_config(train), str(tmp_path / "w"))
    with pytest.raises(UserError, match="source_workdir is required"):
        experiments.run(landscape_config(""), str(tmp_path / "w"))


@pytest.mark.parametrize("bn_mode", ["eval", "batch"])
def test_the_conv_batchnorm_path(tmp_path, bn_mode):
    """A residual network with BatchNorm (CIFAR-shaped synthetic images): both BatchNorm modes measure."""
    from tests.test_lottery import bn_lottery

    source = bn_lottery()
    experiments.run(source, str(tmp_path / "source"))
    config = source.copy_and_resolve_references()
    config.experiment = "landscape"
    config.landscape.update(
        source_workdir=str(tmp_path / "source"),
        examples=64,
        chunk=32,
        top_k=2,
        lanczos_iterations=8,
        trace_probes=4,
        alphas=2,
        projection_fractions=(0.5,),
        bn_mode=bn_mode,
    )
    experiments.run(config, str(tmp_path / "landscape"))
    table = results.load(str(tmp_path / "landscape")).table
    top = table[table.metric == "eigenvalue"].astype({"value": float})
    assert len(top) == 2 * 2 and np.isfinite(top["value"]).all() and (top["value"] > 0).all()
    ends = table[(table.metric == "error") & (table.split == "test") & (table.alpha == 0.0)]
    reference = results.load(str(tmp_path / "source")).table
    final = reference[(reference.arm == "imp") & (reference.split == "test") & (reference.metric == "accuracy")]
    last = final[final.step.astype(int) == final.step.astype(int).max()].astype({"level": int, "value": float})
    for row in ends.itertuples():
        expected = 1.0 - last[(last.level == int(row.level)) & (last.replicate == int(row.replicate))]["value"].item()
        assert float(row.value) == pytest.approx(expected, abs=1e-6)
