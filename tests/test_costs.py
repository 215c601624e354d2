"""What networks cost: FLOPs counted from the traced forward pass against hand counts (LeNet-300-100,
Conv-2, ResNet-20, a ViT's attention), dense and sparse; parameters, nonzero parameters and
compression exact; a lottery run's costs read back from its masks, in its summary, report and figure."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import traverse_util

from jaxlth import checkpoint, data, fields, models, plots, results
from jaxlth.analysis import costs
from jaxlth.data import input_shapes
from jaxlth.errors import UserError
from jaxlth.experiments import registry, run_costs
from jaxlth.layout import Layout
from jaxlth.pruning import masks as mask_lib
from tests.conftest import tiny_config


def shapes_of(name: str, example: tuple, num_classes: int = 10, **options):
    """``(model, params shapes, batch_stats shapes)`` of a registry model, nothing computed."""
    model = models.get_model(name, num_classes, **options)
    key, x = jax.ShapeDtypeStruct((2,), jnp.uint32), jax.ShapeDtypeStruct((1, *example), jnp.float32)
    variables = jax.eval_shape(lambda k, x: model.init(k, x, train=False), key, x)
    return model, variables["params"], variables.get("batch_stats", {})


def flops_of(name: str, example: tuple, **options) -> costs.Flops:
    model, params, stats = shapes_of(name, example, **options)

    def apply(p, b, x):
        return model.apply({"params": p, **({"batch_stats": b} if b else {})}, x, train=False)

    return costs.layer_flops(apply, params, stats, jax.ShapeDtypeStruct(example, jnp.float32))


def conv(size: int, k: int, c_in: int, c_out: int) -> int:
    """Multiply-adds of a 'SAME' k x k convolution with a size x size output: H_out W_out k k C_in C_out."""
    return size * size * k * k * c_in * c_out


def test_lenet_300_100_is_its_three_matrix_products():
    flops = flops_of("lenet_300_100", (28, 28, 1))
    assert flops.by_leaf == {
        ("hidden_0", "kernel"): 784 * 300,
        ("hidden_1", "kernel"): 300 * 100,
        ("output", "kernel"): 100 * 10,
    }
    assert flops.other == 0 and flops.dense == 784 * 300 + 300 * 100 + 100 * 10 == 266_200


def test_conv2_counts_each_convolution_by_the_conv_formula():
    flops = flops_of("conv2", (32, 32, 3))
    assert flops.by_leaf == {
        ("conv_0", "kernel"): conv(32, 3, 3, 64),
        ("conv_1", "kernel"): conv(32, 3, 64, 64),
        ("dense_0", "kernel"): (16 * 16 * 64) * 256,  # after the 2x2 max-pool, flattened
        ("dense_1", "kernel"): 256 * 256,
        ("output", "kernel"): 256 * 10,
    }


def test_resnet20_on_32x32_is_40_8m_multiply_adds():
    expected = {("stem_conv", "kernel"): conv(32, 3, 3, 16), ("output", "kernel"): 64 * 10}
    for stage, (size, width) in enumerate([(32, 16), (16, 32), (8, 64)]):
        for block in range(3):
            c_in = width // 2 if stage > 0 and block == 0 else width
            name = f"stage{stage}_block{block}"
            expected[(name, "conv1", "kernel")] = conv(size, 3, c_in, width)  # stride 2 in the first block
            expected[(name, "conv2", "kernel")] = conv(size, 3, width, width)
            if c_in != width:
                expected[(name, "shortcut_conv", "kernel")] = conv(size, 1, c_in, width)
    flops = flops_of("resnet20", (32, 32, 3))
    assert flops.by_leaf == expected
    assert flops.dense == sum(expected.values()) == 40_813_184 and round(flops.dense / 1e6, 1) == 40.8


def test_attention_products_belong_to_no_parameter():
    tokens, width = (8 // 4) ** 2 + 1, 8  # 4 patches and the class token
    flops = flops_of("vit", (8, 8, 3), patch_size=4, width=width, depth=2, heads=2, mlp_ratio=2)
    assert flops.other == 2 * 2 * tokens * tokens * width  # q k^T and weights v, in each of 2 blocks
    assert flops.by_leaf[("block1", "attention", "query", "kernel")] == tokens * width * width
    assert flops.by_leaf[("patch_embedding", "kernel")] == 4 * (4 * 4 * 3) * width
    assert flops.by_leaf[("output", "kernel")] == width * 10  # the class token only


def test_a_masked_kernel_is_still_its_kernel():
    model, params, _ = shapes_of("lenet_300_100", (28, 28, 1))
    mask = mask_lib.ones_like(jax.tree.map(lambda s: jnp.zeros(s.shape), params))

    def apply(p, b, x):  # as training computes: kernel * mask, cast, then the product
        return model.apply({"params": mask_lib.apply(p, mask)}, x.astype(jnp.bfloat16).astype(jnp.float32), train=False)

    flops = costs.layer_flops(apply, params, {}, jax.ShapeDtypeStruct((28, 28, 1), jnp.float32))
    assert flops.by_leaf[("hidden_0", "kernel")] == 784 * 300 and flops.other == 0


def test_a_scan_counts_every_step_and_a_while_loop_is_refused():
    layers, width = 3, 5
    params = {"stack": {"kernel": jnp.zeros((layers, width, width))}}

    def scanned(p, b, x):
        return jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, p["stack"]["kernel"])[0]

    example = jax.ShapeDtypeStruct((width,), jnp.float32)
    assert costs.layer_flops(scanned, params, {}, example).by_leaf == {("stack", "kernel"): layers * width * width}

    def looped(p, b, x):
        return jax.lax.while_loop(lambda h: h.sum() < 1, lambda h: h @ p["stack"]["kernel"][0], x)

    with pytest.raises(ValueError, match="while"):
        costs.layer_flops(looped, params, {}, example)


def keep_first(shape: tuple, kept: int) -> np.ndarray:
    flat = np.zeros(int(np.prod(shape)), bool)
    flat[:kept] = True
    return flat.reshape(shape)


def test_sparse_flops_are_each_layers_count_times_its_density_and_compression_is_exact():
    _, params, _ = shapes_of("lenet_300_100", (28, 28, 1))
    flops = flops_of("lenet_300_100", (28, 28, 1))
    kept = {"hidden_0": (23_520, 2_352), "hidden_1": (15_000, 3_000)}  # per replicate: 10% / 1%, 50% / 10%
    mask = {
        name: {"kernel": np.stack([keep_first(params[name]["kernel"].shape, k) for k in ks])}
        for name, ks in kept.items()
    }
    out = costs.costs(flops, params, mask)  # the output layer is outside the mask: dense
    total = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert out["total_params"].tolist() == [total, total] == [266_610, 266_610]
    assert out["prunable_params"].tolist() == [784 * 300 + 300 * 100] * 2
    nonzero = [total - 784 * 300 - 300 * 100 + 23_520 + 15_000, total - 784 * 300 - 300 * 100 + 2_352 + 3_000]
    assert out["nonzero_params"].tolist() == nonzero
    assert out["compression"].tolist() == [total / n for n in nonzero]
    hand = [0.1 * 784 * 300 + 0.5 * 300 * 100 + 100 * 10, 0.01 * 784 * 300 + 0.1 * 300 * 100 + 100 * 10]
    np.testing.assert_allclose(out["flops"], hand, rtol=1e-12)
    assert out["dense_flops"].tolist() == [266_200, 266_200]
    with pytest.raises(ValueError, match="not a parameter"):
        costs.costs(flops, params, {"nowhere": {"kernel": np.ones((1, 2, 2), bool)}})


def test_sparse_convolutions_scale_by_their_kernels_density():
    _, params, _ = shapes_of("conv2", (32, 32, 3))
    flops = flops_of("conv2", (32, 32, 3))
    mask = {"conv_1": {"kernel": keep_first(params["conv_1"]["kernel"].shape, 9 * 64 * 16)[None]}}  # a quarter
    out = costs.costs(flops, params, mask)
    assert out["flops"][0] == flops.dense - conv(32, 3, 64, 64) * 3 / 4
    assert out["nonzero_params"][0] == out["total_params"][0] - 9 * 64 * 48


@pytest.mark.parametrize(
    "changes",
    [{}, {"data.synthetic_image_shape": (12, 10, 2)}, {"data.synthetic_image_shape": (28, 28, 1), "data.pad_to": 32}],
)
def test_the_input_shape_known_from_the_config_is_the_loaded_datas(changes):
    config = tiny_config(**changes)
    shape, dtype = input_shapes.example(config.data)
    assert shape == data.load_dataset(config.data).image_shape and dtype == np.float32


def test_fashion_mnist_and_text_input_shapes():
    config = tiny_config(**{"data.name": "fashion_mnist", "data.source": "auto"})
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST IDX files not installed")
    assert input_shapes.example(config.data)[0] == data.load_dataset(config.data).image_shape == (28, 28, 1)
    assert input_shapes.example({"name": "sst2", "max_length": 64}) == ((2, 64), np.int32)
    with pytest.raises(UserError, match="not known"):
        input_shapes.example({"name": "svhn"})


def lottery_workdir(path, replicates: int = 2) -> tuple[str, dict]:
    """A lottery workdir written by hand: config, init, IMP masks of levels 0-2 and a random_prune mask at
    level 1 (each replicate keeping its own first weights), and the final test accuracies."""
    config = tiny_config("lottery", replicates=replicates)
    layout = Layout(str(path))
    os.makedirs(path, exist_ok=True)
    with open(layout.config_file, "w") as f:
        json.dump(fields.to_dict(config), f)
    _, shapes, _ = shapes_of("lenet", (28, 28, 1), widths=(32, 16))
    generator = np.random.default_rng(0)  # the weights' values do not matter here, only their shapes
    params = jax.tree.map(lambda s: generator.normal(size=(replicates, *s.shape)).astype(np.float32), shapes)
    checkpoint.save_artifact(layout.artifact("init"), {"params": params})
    kept = {("imp", 0): (1.0, 1.0), ("imp", 1): (0.8, 0.7), ("imp", 2): (0.6, 0.5), ("random_prune", 1): (0.8, 0.8)}
    rows, masks = [], {}
    for (arm, level), fractions in kept.items():
        mask = {}
        for name in ("hidden_0", "hidden_1"):  # the output layer is never pruned (layers_to_ignore)
            shape = params[name]["kernel"].shape[1:]
            size = int(np.prod(shape))
            mask[name] = {"kernel": np.stack([keep_first(shape, round(f * size)) for f in fractions])}
        masks[arm, level] = mask
        checkpoint.save_artifact(layout.level_artifact(arm, level, "mask"), mask)
        density = mask_lib.replicate_densities(mask)[0]
        for r in range(replicates):
            row = dict(experiment="lottery", arm=arm, level=level, replicate=r, density=float(density[r]), step=16)
            rows.append(dict(row, epoch=2.0, split="test", metric="accuracy", value=0.9 - 0.1 * level + 0.01 * r))
    table = pd.DataFrame(rows).assign(prune_fraction=0.2, layer=np.nan, particle=np.nan)
    table.to_csv(layout.results_file, index=False)
    return str(path), masks


def test_a_lottery_runs_costs_come_from_its_masks(tmp_path):
    workdir, masks = lottery_workdir(tmp_path / "run")
    run = results.load(workdir)
    table = run.costs().set_index(["arm", "level", "replicate"])
    assert len(table) == 8 and (table["prune_fraction"] == 0.2).all()
    dense = {"hidden_0": 784 * 32, "hidden_1": 32 * 16}
    total = 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    for (arm, level), mask in masks.items():
        for r in range(2):
            row = table.loc[(arm, level, r)]
            kept = {name: int(mask[name]["kernel"][r].sum()) for name in dense}
            assert row["nonzero_params"] == total - sum(dense.values()) + sum(kept.values())
            assert row["compression"] == total / row["nonzero_params"]
            assert row["flops"] == pytest.approx(sum(kept.values()) + 16 * 10, rel=1e-12)  # Dense: a MAC per weight
            assert row["dense_flops"] == sum(dense.values()) + 16 * 10
    summary = plots.summary(run).set_index(["arm", "level"])
    assert summary.loc[("imp", 1), "nonzero_params"] == table.loc[("imp", 1), "nonzero_params"].mean()
    assert summary.loc[("imp", 2), "flops"] == pytest.approx(table.loc[("imp", 2), "flops"].mean())
    text = plots.format_summary(run)
    assert "compression" in text and "FLOPs" in text and f"{total:,}" in text


def test_the_report_and_the_figure_take_the_costs_as_x(tmp_path):
    workdir, _ = lottery_workdir(tmp_path / "run")
    run = results.load(workdir)
    text, figures = registry.get("lottery").report(run, str(tmp_path / "plots"))
    assert "nonzero" in text.splitlines()[2] and "accuracy_vs_flops.png" in {os.path.basename(f) for f in figures}
    counted = run.costs()
    imp = plots.summary(run).query("arm == 'imp'").sort_values("level")
    for x, column in (("flops", "flops"), ("compression", "compression"), ("nonzero", "nonzero_params")):
        ax = plots.accuracy_vs(run.table, x=x, costs=counted)
        np.testing.assert_allclose(ax.lines[1].get_xdata(), imp[column])  # line 0 is the dense baseline
        left, right = ax.get_xlim()
        assert ax.get_xscale() == "log" and (left < right if x == "compression" else left > right)  # dense left
    assert plots.accuracy_vs(run, x="flops").get_xlabel() == "FLOPs per example (multiply-adds)"
    assert plots.accuracy_vs(run.table).get_xlabel() == "Weights remaining (%)"
    with pytest.raises(UserError, match="needs the costs"):
        plots.accuracy_vs(run.table, x="flops")
    with pytest.raises(UserError, match="x must be one of"):
        plots.accuracy_vs(run, x="params")


def test_a_sweeps_shared_dense_mask_stands_for_every_fraction(tmp_path):
    workdir, _ = lottery_workdir(tmp_path / "run")
    config = json.load(open(os.path.join(workdir, "config.json")))
    config["lottery"]["prune_fraction"] = [0.2, 0.5]
    json.dump(config, open(os.path.join(workdir, "config.json"), "w"))
    run = results.load(workdir)
    assert run_costs.positions(run, 2) == [
        [{"replicate": 0, "prune_fraction": 0.2}, {"replicate": 0, "prune_fraction": 0.5}],
        [{"replicate": 1, "prune_fraction": 0.2}, {"replicate": 1, "prune_fraction": 0.5}],
    ]
    assert run_costs.positions(run, 4)[1] == [{"replicate": 0, "prune_fraction": 0.5}]  # r * F + f
    with pytest.raises(UserError, match="does not fit"):
        run_costs.positions(run, 3)


def test_a_model_the_config_does_not_rebuild_is_refused(tmp_path):
    workdir, _ = lottery_workdir(tmp_path / "run")
    config = json.load(open(os.path.join(workdir, "config.json")))
    config["model"]["options"]["widths"] = [32, 8]
    saved = traverse_util.flatten_dict(results.load(workdir).load("init")["params"])
    params = traverse_util.unflatten_dict({path: leaf[0] for path, leaf in saved.items()})
    assert run_costs.model_of(json.load(open(os.path.join(workdir, "config.json"))), params).widths == (32, 16)
    with pytest.raises(UserError, match="does not have the saved parameters"):
        run_costs.model_of(config, params)
