"""The Vision Transformer: shapes, parameter names, options, what is prunable, its permutation symmetries,
every experiment end to end on a tiny ViT, a kill and resume, and the training benchmark."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxlth import bench, experiments, models, results
from jaxlth.analysis import permutations
from jaxlth.bench import vit_speed
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from tests.conftest import TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill, tiny_config

TINY_VIT = {"width": 16, "depth": 2, "heads": 2, "patch_size": 7}  # 16 patches of 28x28 images, 7,242 parameters


def initialised(shape, **options):
    """``(apply(params, x), params)`` of a ViT with generic parameters (biases, norms and tokens away from
    their initial values, so no unit is interchangeable with another)."""
    model = models.get_model("vit", 10, **{**TINY_VIT, **options})
    params = init_params(model, shape)
    flat = traverse_util.flatten_dict(params)
    for i, (path, leaf) in enumerate(sorted(flat.items())):
        if path[-1] != "kernel":
            flat[path] = leaf + 0.1 * jax.random.normal(jax.random.key(i), leaf.shape)
    return jax.jit(lambda p, x: model.apply({"params": p}, x, train=False)), traverse_util.unflatten_dict(flat)


def init_params(model, shape):
    return jax.jit(lambda key: model.init(key, jnp.zeros((1, *shape)), train=False))(jax.random.key(0))["params"]


def names(tree) -> set[str]:
    return {"/".join(path) for path in traverse_util.flatten_dict(tree)}


def prunable_layers(depth: int) -> set[str]:
    layers = ("attention/query", "attention/key", "attention/value", "attention/out", "mlp/fc1", "mlp/fc2")
    return {f"block{i}/{layer}/kernel" for i in range(depth) for layer in layers}


# ----- the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,shape", [("vit_tiny", (28, 28, 1)), ("vit_tiny", (32, 32, 3)), ("vit_base", (32, 32, 3))]
)
def test_logits_of_small_and_cifar_sized_images(name, shape):
    model = models.get_model(name, 10)
    x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    for train in (False, True):
        logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=train), variables, x)
        assert logits.shape == (3, 10) and logits.dtype == jnp.float32
    assert set(variables) == {"params"}  # no BatchNorm, nothing but parameters
    patches = (shape[0] // model.patch_size) ** 2
    assert variables["params"]["position_embedding"].shape == (1, patches + 1, model.width)


def test_parameter_names_and_shapes():
    model = models.get_model("vit", 10, width=8, depth=2, heads=2, mlp_ratio=3, patch_size=4)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))["params"]
    shapes = {name: leaf.shape for name, leaf in zip(sorted(names(params)), _leaves_by_name(params))}
    expected = {
        "patch_embedding/kernel": (48, 8),
        "patch_embedding/bias": (8,),
        "cls_token": (1, 1, 8),
        "position_embedding": (1, 65, 8),
        "norm/scale": (8,),
        "norm/bias": (8,),
        "output/kernel": (8, 10),
        "output/bias": (10,),
    }
    for i in range(2):
        for norm in ("norm1", "norm2"):
            expected.update({f"block{i}/{norm}/scale": (8,), f"block{i}/{norm}/bias": (8,)})
        for layer in ("query", "key", "value", "out"):
            expected.update({f"block{i}/attention/{layer}/kernel": (8, 8), f"block{i}/attention/{layer}/bias": (8,)})
        expected.update({f"block{i}/mlp/fc1/kernel": (8, 24), f"block{i}/mlp/fc1/bias": (24,)})
        expected.update({f"block{i}/mlp/fc2/kernel": (24, 8), f"block{i}/mlp/fc2/bias": (8,)})
    assert shapes == expected
    mean = models.get_model("vit", 10, width=8, depth=1, heads=2, pool="mean")
    params = jax.eval_shape(lambda: mean.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False))["params"]
    assert "cls_token" not in params and params["position_embedding"].shape == (1, 49, 8)


def _leaves_by_name(tree):
    flat = traverse_util.flatten_dict(tree)
    return [flat[path] for path in sorted(flat, key="/".join)]


def test_registered_sizes():
    for name, (width, depth, heads, patch) in {
        "vit": (192, 12, 3, 4),
        "vit_tiny": (192, 12, 3, 4),
        "vit_small": (384, 12, 6, 16),
        "vit_base": (768, 12, 12, 16),
    }.items():
        model = models.get_model(name, 10)
        assert (model.width, model.depth, model.heads, model.patch_size, model.mlp_ratio, model.pool) == (
            width,
            depth,
            heads,
            patch,
            4,
            "cls",
        )
    assert models.get_model("vit_tiny", 10, patch_size=8, pool="mean").patch_size == 8
    # ViT-B/16 on 224x224 images: timm's vit_base_patch16_224 has 86,567,656 parameters with 1000 classes.
    model = models.get_model("vit_base", 1000)
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    assert models.param_count(variables["params"]) == 86_567_656


def test_init_as_big_vision_with_the_repository_s_classifier():
    model = models.get_model("vit", 10, **{**TINY_VIT, "width": 64, "heads": 4})
    params = init_params(model, (28, 28, 1))
    query = np.asarray(params["block0"]["attention"]["query"]["kernel"])  # Xavier uniform: +-sqrt(6 / 128)
    assert np.abs(query).max() <= np.sqrt(6 / 128) and np.abs(query).max() > 0.9 * np.sqrt(6 / 128)
    np.testing.assert_array_equal(params["block0"]["mlp"]["fc1"]["bias"], 0)
    np.testing.assert_array_equal(params["block0"]["norm1"]["scale"], 1)
    assert 0.015 < np.std(params["position_embedding"]) < 0.025
    assert np.abs(params["cls_token"]).max() < 1e-4
    output = params["output"]  # OpenLTH's Dense: Kaiming normal, PyTorch's uniform bias, not zeros
    assert np.std(output["kernel"]) > 0.1 and np.abs(output["bias"]).max() > 0


@pytest.mark.parametrize(
    "options,words",
    [
        ({"width": 10, "heads": 3}, ["width divisible by heads", "10", "3"]),
        ({"depth": 0}, ["depth", "0"]),
        ({"patch_size": 2.5}, ["patch_size"]),
        ({"mlp_ratio": True}, ["mlp_ratio"]),
        ({"pool": "max"}, ["pool", "'cls' or 'mean'", "max"]),
        ({"dropout": 0.1}, ["'dropout'", "patch_size"]),
    ],
)
def test_bad_options_are_one_sentence(options, words):
    with pytest.raises(UserError) as err:
        models.get_model("vit", 10, **options)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_named_sizes_take_only_patch_size_and_pool():
    with pytest.raises(UserError, match="'width'.*patch_size, pool"):
        models.get_model("vit_small", 10, width=64)


def test_image_sides_must_be_multiples_of_the_patch():
    model = models.get_model("vit", 10, **TINY_VIT)
    with pytest.raises(UserError, match="divisible by its patch_size 7, got 32x32"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)


# ----- what is pruned --------------------------------------------------------------------------------
def test_by_default_exactly_the_attention_and_mlp_kernels_are_prunable():
    model = models.get_model("vit", 10, width=8, depth=3, heads=2, pool="cls")
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))["params"]
    for name in ("vit", "vit_tiny", "vit_small", "vit_base"):
        mask = mask_lib.ones_like(params, models.dense_by_default(name))
        assert names(mask) == prunable_layers(3)
    assert {mask_lib.layer_name(p) for p in mask_lib.prunable_paths(params)} == prunable_layers(3) | {
        "patch_embedding/kernel",
        "output/kernel",
    }
    others = [name for name in models.names() if not name.startswith(("vit", "bert"))]  # BERT: tests/test_bert.py
    assert all(models.dense_by_default(name) == () for name in others)


# ----- permutation symmetries --------------------------------------------------------------------------
def groups_of(spec) -> dict[str, set[tuple[str, int]]]:
    return {group: {("/".join(path), axis) for _, path, axis, _ in entries} for group, entries in spec.items()}


@pytest.mark.parametrize(
    "options,shape,expected",
    [
        ({}, (28, 28, 1), 3),  # the residual stream (through the class token) + one MLP per block
        ({"pool": "mean"}, (28, 28, 1), 3),
        ({"heads": 1, "patch_size": 4}, (32, 32, 3), 7),  # one head: query/key and value/out dims too
        ({"heads": 16}, (28, 28, 1), 3),  # heads of one dimension: the reshape splits no group
    ],
)
def test_a_random_permutation_of_the_derived_symmetry_keeps_the_logits(options, shape, expected):
    apply, params = initialised(shape, **options)
    spec = permutations.spec(lambda p, b, x: apply(p, x), params, {}, shape)
    assert len(spec) == expected
    groups = groups_of(spec)
    residual = next(g for g in groups.values() if ("position_embedding", 2) in g)
    assert {
        ("block1/norm2/scale", 0),
        ("norm/bias", 0),
        ("patch_embedding/kernel", 1),
        ("output/kernel", 0),
    } <= residual
    assert (("cls_token", 2) in residual) == (options.get("pool", "cls") == "cls")
    for i in range(2):
        assert {(f"block{i}/mlp/fc1/kernel", 1), (f"block{i}/mlp/fc2/kernel", 0), (f"block{i}/mlp/fc1/bias", 0)} in [
            g for g in groups.values()
        ]
    query_outputs = [g for g in groups.values() if ("block0/attention/query/kernel", 1) in g]
    if options.get("heads", 2) == 1:
        assert query_outputs == [
            {(f"block0/attention/{m}/{p}", a) for m in ("query", "key") for p, a in (("kernel", 1), ("bias", 0))}
        ]
    else:
        assert query_outputs == []  # heads (and dims within heads) are not derived: fixed, never wrong
    sizes = permutations.sizes(spec, params, {})
    perms = permutations.random_permutations(spec, sizes, jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (4, *shape))
    logits = apply(params, x)
    permuted = apply(permutations.permute(spec, perms, params, {})[0], x)
    np.testing.assert_allclose(permuted, logits, atol=1e-5 * float(jnp.max(jnp.abs(logits))) + 1e-6)
    for group, entries in spec.items():  # every group matters: leaving out one of its kernels changes the logits
        kernel = next(e for e in entries if e[1][-1] == "kernel")
        broken = apply(permutations.permute({group: [e for e in entries if e != kernel]}, perms, params, {})[0], x)
        assert float(jnp.max(jnp.abs(broken - logits))) > 1e-3 * float(jnp.max(jnp.abs(logits)))


# ----- experiments end to end on a tiny ViT (synthetic 28x28 images) ---------------------------------------
def vit_config(arg: str, **changes):
    """The tiny config of ``arg`` with the tiny ViT; the patch embedding and classifier stay dense."""
    model = {"model.name": "vit", "model.options": dict(TINY_VIT)}
    return tiny_config(arg, **model, **{"pruning.layers_to_ignore": models.dense_by_default("vit")}, **changes)


@pytest.fixture(scope="module")
def lottery_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("vit") / "lottery")
    experiments.run(vit_config("lottery", **{"lottery.levels": 1, "lottery.branches": ("random_prune",)}), workdir)
    return results.load(workdir)


def test_imp_and_a_random_pruning_branch_prune_only_attention_and_mlp_kernels(lottery_run):
    run = lottery_run
    assert run.levels("imp") == [0, 1] and run.levels("random_prune") == [1]
    for arm in ("imp", "random_prune"):  # one replicate: masks are (1, fan_in, fan_out)
        mask = run.mask(1, arm=arm)
        assert names(mask) == prunable_layers(2)
        total = sum(m.size for m in jax.tree.leaves(mask))
        assert sum(int(m.sum()) for m in jax.tree.leaves(mask)) == total - int(np.ceil(0.2 * total))
    final = run.params(1, arm="imp")
    pruned = run.mask(1)["block0"]["mlp"]["fc1"]["kernel"]
    assert np.all(final["block0"]["mlp"]["fc1"]["kernel"][~pruned] == 0)
    test = run.table[(run.table.split == "test") & (run.table.metric == "accuracy")]
    assert {"imp", "random_prune"} <= set(test.arm) and test.value.notna().all()


def test_instability_aligns_vit_copies_by_weights_and_activations(tmp_path):
    workdir = str(tmp_path / "instability")
    config = vit_config(
        "instability",
        **{"instability.align": ("none", "weights", "activations"), "instability.spawn_steps": "4it"},
    )
    experiments.run(config, workdir)
    table = results.load(workdir).table
    barrier = table[(table.metric == "barrier_frankle") & (table.split == "test")]
    assert set(barrier["align"]) == {"none", "weights", "activations"} and barrier.value.notna().all()


def test_landscape_measures_the_curvature_of_the_vit_in_its_pruned_subspace(lottery_run, tmp_path):
    workdir = str(tmp_path / "landscape")
    measure = {"levels": (1,), "examples": 64, "chunk": 32, "top_k": 2, "lanczos_iterations": 10, "trace_probes": 4}
    measure.update({"alphas": 3, "projection_fractions": (0.5,), "source_workdir": lottery_run.workdir})
    experiments.run(vit_config("landscape", **{f"landscape.{k}": v for k, v in measure.items()}), workdir)
    table = results.load(workdir).table
    assert set(table.level) == {1}
    values = table.set_index("metric").value
    assert len(values["eigenvalue"]) == 2 and np.isfinite(values[["eigenvalue", "trace"]]).all()
    assert float(values["eigenvalue"].max()) > 0
    # M H M: the kept attention and MLP weights and every leaf that is never pruned
    mask, params = lottery_run.mask(1), lottery_run.params(1)
    pruned = sum(int((~m).sum()) for m in jax.tree.leaves(mask))
    assert float(values["subspace_dim"]) == models.param_count(params) - pruned


def test_el2n_scores_of_the_vit(tmp_path):
    workdir = str(tmp_path / "scores")
    experiments.run(vit_config("scores", **{"scores.kinds": ("el2n",), "scores.at": "0it,4it"}), workdir)
    run = results.load(workdir)
    assert run.score_steps() == [0, 4]
    el2n = run.scores("el2n", step=4)
    assert el2n.shape == (256,) and np.all((el2n >= 0) & (el2n <= np.sqrt(2))) and np.ptp(el2n) > 0


def test_snip_prunes_the_vit_at_initialisation(tmp_path):
    workdir = str(tmp_path / "pai")
    changes = {"prune_at_init.methods": ("snip",), "prune_at_init.densities": (0.5,), "prune_at_init.ablations": ()}
    experiments.run(vit_config("prune_at_init", **changes), workdir)
    run = results.load(workdir)
    density = run.table[(run.table.metric == "accuracy") & (run.table.split == "test")].density
    np.testing.assert_allclose(sorted(set(density.round(3))), [0.5], atol=2e-3)


@pytest.mark.slow
def test_a_killed_vit_lottery_run_resumes_bitwise(tmp_path):
    config_file = tmp_path / "tiny_vit.py"
    config_file.write_text(
        textwrap.dedent(
            f"""
            import importlib.util

            spec = importlib.util.spec_from_file_location("tiny", {TINY!r})
            tiny = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(tiny)


            def get_config(arg=None):
                c = tiny.get_config(arg)
                c.model.name = "vit"
                c.model.options = {TINY_VIT!r}
                c.pruning.layers_to_ignore = ("^patch_embedding/", "^output/")
                return c
            """
        )
    )
    args = ["--config", f"{config_file}:lottery", "--config.train.steps=4ep", "--config.checkpoint_every=5it"]
    args += ["--config.lottery.branches=('random_prune',)", "--config.replicates=2"]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    target = workdir / "checkpoints" / "imp" / "level_02"
    start_and_kill([*args, "--workdir", str(workdir)], lambda: checkpoint_steps(target)[-1:] >= [15])
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for arm in ("imp", "random_prune"):
        for level in a.levels(arm):
            for x, y in zip(jax.tree.leaves(a.params(level, arm=arm)), jax.tree.leaves(b.params(level, arm=arm))):
                np.testing.assert_array_equal(x, y)
    cols = ["arm", "level", "step", "replicate", "split", "metric", "layer", "value"]
    assert_same_rows(a.table, b.table, cols)


# ----- the benchmark -----------------------------------------------------------------------------------
def test_the_training_benchmark_times_a_vit_against_the_plain_loop(capsys):
    options = "width=16,depth=1,heads=2,patch_size=8"
    bench.main(
        ["train", "--model", "vit", "--model-options", options, "--replicates", "1", "--batch", "8"]
        + ["--steps", "2", "--repeats", "1", "--train-size", "64"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith("vit(width=16, depth=1, heads=2, patch_size=8) on CIFAR-10-shaped data") for line in lines
    )
    rows = [line.split(" | ") for line in lines if line.startswith("| vit | ")]
    assert [row[1] for row in rows] == ["1"] and float(rows[0][2]) > 0 and rows[0][5] == "1.00x"
    assert float(rows[0][3].replace(",", "")) == pytest.approx(8 * float(rows[0][2]), rel=0.01)  # batch 8
    assert any(line.startswith("vit: jaxlth / plain loop (R=1) = ") for line in lines)
    assert vit_speed.parse_options("width=64,pool=mean") == {"width": 64, "pool": "mean"}
