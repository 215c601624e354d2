"""Dataset distillation (``jaxlth.distillation``, ``experiment = "distill"``): the inner loop's gradient,
the outer loop lowering MTT's and DM's losses, sets vmapped as one-set runs, resume, bad input, the artifact."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, models, results
from jaxlth.distillation import dm, mtt, outer, student, synthetic_set
from jaxlth.errors import UserError
from jaxlth.experiments.distill import run as distill_run
from jaxlth.training import functions as fn
from tests.conftest import TINY, checkpoint_steps, run_cli, start_and_kill, tiny_config

K, SHAPE = 3, (6, 6, 1)
SPEC = fn.Spec(
    batch_size=16, steps_per_epoch=6, num_train=96, image_shape=SHAPE, mean=(0.4,), std=(0.3,),
    pixel_scale=255.0, augmentation="none", eval_batch_size=96,
)  # fmt: skip
MODEL = models.get_model("lenet", K, widths=(12,))


def real_data(n: int = 96):
    """Images whose class sets their brightness pattern (learnable), stored as uint8 pixels."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % K
    base = np.stack([np.full(SHAPE, 60.0 + 60 * c) for c in range(K)])
    images = np.clip(base[labels] + rng.normal(0, 30, (n, *SHAPE)), 0, 255).astype(np.uint8)
    return jnp.asarray(images), jnp.asarray(labels, jnp.int32)


@functools.cache
def expert_trajectories(experts: int = 2, epochs: int = 4) -> dict:
    """Experts trained by SGD on the real data, every epoch kept: leaves ``(experts, epochs + 1, ...)``."""
    images, labels = real_data()
    trajectories = []
    for e in range(experts):
        params, _ = fn.init(MODEL, SPEC, jax.random.PRNGKey(10 + e))
        network, kept = {"params": params, "batch_stats": {}}, [params]
        for epoch in range(epochs):
            order = student.minibatch_order(jax.random.PRNGKey(100 * e + epoch), images.shape[0], 16, 6)
            network = {"params": student.train(MODEL, SPEC, network, images, labels, 0.1, order, None, False)}
            network["batch_stats"] = {}
            kept.append(network["params"])
        trajectories.append(jax.tree.map(lambda *xs: jnp.stack(xs), *kept))
    return {"params": jax.tree.map(lambda *xs: jnp.stack(xs), *trajectories), "batch_stats": {}}


def settings(method: str, **changes) -> outer.Settings:
    fields = dict(
        method=method, images_per_class=2, num_classes=K, iterations=20, lr_images=0.1 if method == "dm" else 30.0,
        lr_lr=0.01, matching=mtt.Matching(6, 2, 2, 3), distribution=dm.Distribution(8, K),
    )  # fmt: skip
    return outer.Settings(**{**fields, **changes})


def test_inner_loop_gradient_equals_central_finite_differences():
    """d(matching loss)/d(images in stored units), unrolled through 3 SGD steps with jax.checkpoint, against
    a central difference along random directions (float64 networks; preprocessing casts pixels to float32)."""
    images, labels = real_data()
    trajectory = expert_trajectories(experts=1, epochs=2)
    with jax.enable_x64(True):
        wide = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)  # noqa: E731
        start, target = wide(mtt.epoch_of(trajectory, 0, 0)), wide(mtt.epoch_of(trajectory["params"], 0, 2))
        syn, syn_labels = jnp.asarray(images[:6], jnp.float64), labels[:6]
        order = student.minibatch_order(jax.random.PRNGKey(3), 6, 3, 3)

        def loss(x):
            trained = student.train(MODEL, SPEC, start, x, syn_labels, 0.05, order, None, remat=True)
            return mtt.matching_loss(trained, start["params"], target)

        grad = jax.grad(loss)(syn)
        assert grad.dtype == jnp.float64 and float(jnp.linalg.norm(grad)) > 0
        for seed in range(3):
            direction = jax.random.normal(jax.random.PRNGKey(seed), syn.shape, jnp.float64)
            eps = 0.01  # pixels of 0..255
            numeric = (loss(syn + eps * direction) - loss(syn - eps * direction)) / (2 * eps)
            np.testing.assert_allclose(float(jnp.vdot(grad, direction)), float(numeric), rtol=5e-3)


def mean_objective(program: outer.Outer, variables, trajectory, images, labels) -> float:
    """The objective averaged over 8 fixed iteration keys (the same draws before and after)."""
    keys = jax.random.split(jax.random.PRNGKey(7), 8)
    return float(np.mean([program.objective(variables, k, trajectory, images, labels) for k in keys]))


@pytest.mark.parametrize("method", ["mtt", "dm"])
def test_a_few_outer_iterations_lower_the_loss(method):
    images, labels = real_data()
    trajectory = expert_trajectories() if method == "mtt" else None
    program = outer.Outer(MODEL, SPEC, settings(method, init="noise"))
    state = program.start(jax.random.split(jax.random.PRNGKey(1), 1), images, labels)
    one = jax.tree.map(lambda x: x[0], state.variables)
    before = mean_objective(program, one, trajectory, images, labels)
    state = program.chunk(state, jax.random.split(jax.random.PRNGKey(2), 1), trajectory, images, labels, 0, 20)
    after = mean_objective(program, jax.tree.map(lambda x: x[0], state.variables), trajectory, images, labels)
    assert np.all(np.isfinite(np.asarray(state.losses)))
    assert after < 0.9 * before, (before, after)
    if method == "mtt":
        assert float(np.asarray(state.lrs)[0, -1]) != pytest.approx(0.01, rel=1e-6)  # the lr is learned


def test_sets_vmapped_equal_one_set_runs():
    images, labels = real_data()
    trajectory = expert_trajectories()
    program = outer.Outer(MODEL, SPEC, settings("mtt", learn_labels=True, lr_labels=1.0, iterations=3))
    start_keys, set_keys = jax.random.split(jax.random.PRNGKey(4), 2), jax.random.split(jax.random.PRNGKey(5), 2)
    together = program.chunk(program.start(start_keys, images, labels), set_keys, trajectory, images, labels, 0, 3)
    for r in range(2):
        alone = program.start(start_keys[r : r + 1], images, labels)
        alone = program.chunk(alone, set_keys[r : r + 1], trajectory, images, labels, 0, 3)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[r], rtol=1e-5, atol=1e-6)


TINY_FIELDS = {
    "distill.images_per_class": 2, "distill.iterations": 12, "distill.inner_steps": 3, "distill.expert_epochs": 1,
    "distill.max_start_epoch": 2, "distill.experts": 2, "distill.expert_steps": "2ep", "distill.chunk": 3,
    "distill.log_every": 2, "distill.eval_steps": 4, "distill.learn_labels": True, "replicates": 2,
    "distill.lr_images": 1.0,
}  # fmt: skip


def tiny(**changes):
    return tiny_config("distill", **{**TINY_FIELDS, **changes})


def test_a_killed_run_resumes_bitwise_and_leaves_the_contract_artifact(tmp_path):
    reference = str(tmp_path / "reference")
    experiments.run(tiny(), reference)
    killed = tmp_path / "killed"
    flags = [
        f"--config.{name}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for name, v in TINY_FIELDS.items()
    ]
    start_and_kill(  # SIGKILL once the outer loop's first chunk is committed, before its last
        ["--config", f"{TINY}:distill", *flags, "--workdir", str(killed)],
        lambda: checkpoint_steps(killed / "checkpoints" / distill_run.CHECKPOINTS) != [],
    )
    assert checkpoint_steps(killed / "checkpoints" / distill_run.CHECKPOINTS)[-1] < 12, "killed after the last chunk"
    assert not checkpoint.artifact_exists(results.load(str(killed)).layout.artifact(distill_run.DISTILLED))
    run_cli("--config", f"{TINY}:distill", *flags, "--workdir", str(killed), check=True)
    killed = str(killed)
    a, b = results.load(reference), results.load(killed)
    for u, v in zip(jax.tree.leaves(a.distilled()), jax.tree.leaves(b.distilled())):
        np.testing.assert_array_equal(u, v)
    curve_a, curve_b = a.curve(), b.curve()
    assert len(curve_a) == len(curve_b) == 2 * 2 * 6  # sets x (loss, lr) x logged steps 2, 4, ..., 12
    np.testing.assert_array_equal(
        curve_a.sort_values(["replicate", "step", "metric"])["value"].to_numpy(),
        curve_b.sort_values(["replicate", "step", "metric"])["value"].to_numpy(),
    )
    # the contract: images in the real data's units, learned label logits, the learned lr
    d = a.distilled()
    assert d["images"].shape == (2, 20, 28, 28, 1) and d["images"].dtype == np.float32
    assert d["labels"].shape == (2, 20, 10) and d["labels"].dtype == np.float32
    assert d["lr"].shape == (2,) and d["lr"].dtype == np.float32 and np.all(d["lr"] > 0)
    assert 0 <= np.median(d["images"]) <= 255 and np.max(d["images"]) > 2  # pixel units, not normalised
    assert sorted(a.tested()["step"].unique()) == [0, 12]
    # hard labels (DM): int32 classes, class-major; the fixed lr
    program = outer.Outer(MODEL, SPEC, settings("dm", init_lr=0.02))
    hard = distill_run.contract(program, {"inputs": jnp.zeros((2, 6, *SHAPE))})
    assert hard["labels"].dtype == np.int32 and hard["labels"].tolist() == [[0, 0, 1, 1, 2, 2]] * 2
    np.testing.assert_allclose(hard["images"], 255 * 0.4, rtol=1e-6)  # input 0 is the data's mean
    assert hard["lr"].tolist() == [np.float32(0.02)] * 2

    # experts of another model: one sentence, before anything is written
    other = tiny(**{"distill.experts_workdir": reference})
    other.model.options.widths = (8,)
    with pytest.raises(UserError) as refused:
        experiments.run(other, str(tmp_path / "other"))
    assert "model.options" in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "other" / "config.json").exists()


def test_bad_settings_are_one_sentence():
    with pytest.raises(UserError, match="images_per_class must be at least 1"):
        tiny(**{"distill.images_per_class": 0})
    with pytest.raises(UserError, match="learn_labels needs"):
        tiny(**{"distill.method": "dm"})
    with pytest.raises(UserError, match="must reach epoch"):
        tiny(**{"distill.expert_steps": "1ep", "distill.max_start_epoch": 3})


def test_synthetic_units_round_trip_and_real_start_draws_each_class():
    images, labels = real_data()
    inputs = synthetic_set.initial_inputs(jax.random.PRNGKey(0), images, labels, 2, K, "real", SPEC)
    stored = synthetic_set.from_inputs(inputs, SPEC)
    np.testing.assert_allclose(synthetic_set.to_inputs(stored, SPEC), inputs, rtol=1e-5, atol=1e-5)
    chosen = synthetic_set.draw_per_class(jax.random.PRNGKey(0), labels, K, 2)
    assert np.all(np.asarray(labels)[np.asarray(chosen)] == np.arange(K)[:, None])
    assert len(set(np.asarray(chosen).ravel().tolist())) == 2 * K
    np.testing.assert_allclose(stored, np.asarray(images)[np.asarray(chosen).ravel()], atol=1e-3)


def test_the_distill_benchmark_prints_a_row_per_method_and_set_count(capsys):
    from jaxlth.bench import distill_speed

    assert distill_speed.model_options("convnet", "width=32,norm=none") == {"width": 32, "norm": "none"}
    assert distill_speed.model_options("lenet_300_100", "width=32") == {}  # options a model does not take
    args = ["--models", "lenet_300_100", "--data", "cifar10", "--ipc", "1", "--inner-steps", "2"]
    distill_speed.main([*args, "--replicates", "2", "--iterations", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| lenet_300_100")]
    assert "(32, 32, 3) images" in out and [row.split(": ")[1].split(",")[0] for row in rows] == ["MTT", "DM"]
    assert [row.split(" | ")[1] for row in rows] == ["2", "2"]
    for row in rows:
        seconds, temporaries = float(row.split(" | ")[2].split()[0]), float(row.split(" | ")[3])
        assert seconds > 0 and temporaries > 0
