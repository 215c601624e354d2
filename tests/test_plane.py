"""The loss plane through three networks: its basis, corners, grid, replicates, masks and bad inputs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import experiments, plots, results
from jaxlth.analysis import plane as plane_lib
from jaxlth.analysis import plane_geometry
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config

SMALL = {"model.options.widths": (8, 8), "replicates": 2}


def moved(network: dict, seed: int, scale: float = 0.05) -> dict:
    """``network`` with Gaussian noise added to every parameter (stacked replicates kept)."""
    leaves, tree = jax.tree.flatten(network["params"])
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return dict(network, params=jax.tree.unflatten(tree, noisy))


@pytest.fixture(scope="module")
def three():
    setup = setup_lib.build(tiny_config(None, **SMALL))
    state = setup.init_state()
    net0 = {"params": state.params, "batch_stats": state.batch_stats}
    return setup, [net0, moved(net0, 1), moved(net0, 2)]


def test_the_basis_is_orthonormal_and_locates_the_three_networks(three):
    _, nets = three
    for r in range(2):
        params = [jax.tree.map(lambda x, r=r: x[r], n["params"]) for n in nets]
        e1, e2, points = plane_lib.basis(*params)
        dot = lambda x, y: float(plane_geometry._vdot(x, y))  # noqa: E731
        np.testing.assert_allclose([dot(e1, e1), dot(e2, e2)], [1.0, 1.0], rtol=1e-6)
        assert abs(dot(e1, e2)) < 1e-6
        for k in (1, 2):
            rebuilt = jax.tree.map(lambda p, x, y, k=k: p + points[k, 0] * x + points[k, 1] * y, params[0], e1, e2)
            for got, want in zip(jax.tree.leaves(rebuilt), jax.tree.leaves(params[k])):
                np.testing.assert_allclose(got, want, atol=1e-5)
        assert points[2, 1] > 0 and points[1, 1] == 0 and np.all(np.asarray(points[0]) == 0)


def test_the_corners_are_the_networks_own_losses(three):
    setup, nets = three
    test = (setup.data.test_images, setup.data.test_labels)
    found = plane_lib.plane(setup.program, *nets, *test, resolution=5, chunk_size=7)
    evaluate = jax.jit(jax.vmap(setup.program.evaluate_one, in_axes=(0, 0, None, None)))
    for k, net in enumerate(nets):
        loss, acc = evaluate(net["params"], net["batch_stats"], *test)
        np.testing.assert_allclose(found.point_loss[:, k], loss, rtol=1e-6)  # the same network, bit for bit
        np.testing.assert_allclose(found.point_error[:, k], 1.0 - np.asarray(acc), atol=0)
    # the barycentric weights of the three points are exactly one-hot: the combination is the network itself
    np.testing.assert_array_equal(
        plane_lib.barycentric(found.points, found.points), np.broadcast_to(np.eye(3), (2, 3, 3))
    )
    # the grid spans the points with a margin, and a grid point is theta_0 + a e_1 + b e_2
    assert np.all(found.a.min(1) < found.points[:, :, 0].min(1)) and np.all(
        found.b.max(1) > found.points[:, :, 1].max(1)
    )
    params = [jax.tree.map(lambda x: x[1], n["params"]) for n in nets]
    e1, e2, _ = plane_lib.basis(*params)
    a, b = found.a[1, 3], found.b[1, 2]
    point = jax.tree.map(lambda p, x, y: p + a * x + b * y, params[0], e1, e2)
    stats = jax.tree.map(lambda x: x[1], nets[0]["batch_stats"])
    loss, _ = setup.program.evaluate_one(point, stats, *test)
    np.testing.assert_allclose(found.loss[1, 2, 3], loss, rtol=1e-4)


def test_vmapped_replicates_equal_each_plane_alone(three):
    setup, nets = three
    test = (setup.data.test_images, setup.data.test_labels)
    both = plane_lib.plane(setup.program, *nets, *test, resolution=4)
    for r in range(2):
        one = [jax.tree.map(lambda x, r=r: x[r : r + 1], n) for n in nets]
        alone = plane_lib.plane(setup.program, *one, *test, resolution=4)
        np.testing.assert_allclose(both.points[r], alone.points[0], rtol=1e-6)
        np.testing.assert_allclose(both.loss[r], alone.loss[0], rtol=1e-5)
        np.testing.assert_allclose(both.error[r], alone.error[0], atol=1e-6)


def test_masked_networks_span_a_masked_plane(three):
    setup, nets = three
    dense = mask_lib.ones_like(jax.tree.map(lambda x: x[0], nets[0]["params"]), ("output",))
    rng = np.random.default_rng(0)
    mask = jax.tree.map(lambda m: jnp.asarray(rng.random((2, *m.shape)) < 0.5), dense)
    test = (setup.data.test_images, setup.data.test_labels)
    found = plane_lib.plane(setup.program, *nets, *test, resolution=3, masks=mask)
    pruned = [dict(n, params=mask_lib.apply(n["params"], mask)) for n in nets]
    evaluate = jax.jit(jax.vmap(setup.program.evaluate_one, in_axes=(0, 0, None, None)))
    for k, net in enumerate(pruned):
        loss = evaluate(net["params"], net["batch_stats"], *test)[0]
        np.testing.assert_allclose(found.point_loss[:, k], loss, rtol=1e-6)
    weights = plane_lib.barycentric(found.points, np.array([[[-0.3, 0.7]], [[1.5, -0.2]]]))  # off the triangle
    for r in range(2):
        point = plane_lib._combine(
            jnp.asarray(weights[r, 0], jnp.float32), *(jax.tree.map(lambda x, r=r: x[r], n["params"]) for n in pruned)
        )
        kept = mask_lib.apply(point, jax.tree.map(lambda m, r=r: m[r], mask))  # the pruned weights zeroed
        for got, want in zip(jax.tree.leaves(point), jax.tree.leaves(kept)):
            np.testing.assert_array_equal(got, want, err_msg="a pruned weight is nonzero on the plane")


def test_bad_inputs_are_one_sentence(three):
    setup, nets = three
    test = (setup.data.test_images, setup.data.test_labels)
    with pytest.raises(UserError, match="networks 0 and 1 are the same"):
        plane_lib.plane(setup.program, nets[0], nets[0], nets[2], *test)
    line = jax.tree.map(lambda x, y: x + 2.0 * (y - x), nets[0], nets[1])
    with pytest.raises(UserError, match="network 2 lies on the line"):
        plane_lib.plane(setup.program, nets[0], nets[1], line, *test)
    other = setup_lib.build(tiny_config(None, **{**SMALL, "model.options.widths": (8, 4)})).init_state()
    with pytest.raises(UserError, match="networks 0 and 2 differ in structure"):
        plane_lib.plane(setup.program, nets[0], nets[1], {"params": other.params, "batch_stats": {}}, *test)
    with pytest.raises(UserError, match="resolution >= 2"):
        plane_lib.plane(setup.program, *nets, *test, resolution=1)


def test_through_saved_networks_and_the_figure(tmp_path):
    workdir = str(tmp_path / "train")
    experiments.run(tiny_config(None, **SMALL, **{"train.steps": "1ep"}), workdir)
    run = results.load(workdir)
    found = plane_lib.through(
        run, run.network(which="init", replicate=0), run.network(replicate=0), run.network(replicate=1), resolution=4
    )
    assert found.loss.shape == (1, 4, 4) and found.points.shape == (1, 3, 2)
    final = run.table[(run.table.metric == "loss") & (run.table.split == "test")]
    last = final[final.step == final.step.max()].sort_values("replicate")["value"].to_numpy()
    np.testing.assert_allclose(found.point_loss[0, 1:], last, rtol=1e-5)  # the run's own final test losses
    train = plane_lib.through(
        run,
        run.network(which="init"),
        run.network(),
        moved(run.network(which="init", replicate=0), 3),  # one network: shared by both planes
        split="train",
        examples=64,
        resolution=6,
    )
    assert train.loss.shape == (2, 6, 6) and train.split == "train"
    ax = plots.loss_plane(found, labels=("init", "seed 0", "seed 1"))
    assert len(ax.texts) == 3 and ax.texts[1].get_text().startswith("seed 0: ")
    plots.loss_plane(train, metric="error", replicate=1).figure.savefig(os.path.join(tmp_path, "plane.png"))
    assert os.path.getsize(os.path.join(tmp_path, "plane.png")) > 0
