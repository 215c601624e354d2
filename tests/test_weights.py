"""Public checkpoint files into jaxlth networks (jaxlth.weights): torchvision ResNets, timm and Hugging
Face ViTs. Every checkpoint here is written by hand under the public key names and PyTorch layouts,
so the mapping is checked against this file's own account of it, not against the library's inverse."""

import jax
import numpy as np
import pytest
from scipy.special import erf

from jaxlth import weights
from jaxlth.bench import load_speed
from jaxlth.errors import UserError
from jaxlth.models import get_model
from jaxlth.models.vit import ViT

CLASSES = 3
WIDTH, DEPTH, HEADS, PATCH = 16, 2, 2, 4  # the tiny ViT: 8x8 images -> a 2x2 grid, 16x16 -> 4x4


# ----- networks and hand-written checkpoints -------------------------------------------------------
def init(model, side):
    variables = model.init(jax.random.key(0), np.zeros((1, side, side, 3), np.float32), train=False)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def shapes(model, side):
    return jax.eval_shape(lambda: init(model, side))


def random_network(model, side, seed=0):
    """A network of ``model`` with random numbers (faster than its initialisation)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes(model, side))


def logits(model, network, x):
    variables = {"params": network["params"]}
    if network["batch_stats"]:
        variables["batch_stats"] = network["batch_stats"]
    return np.asarray(model.apply(variables, x, train=False))


def unflatten(flat):
    out = {"params": {}, "batch_stats": {}}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def assert_networks_equal(a, b):
    fa, fb = weights.flatten(a), weights.flatten(b)
    assert sorted(fa) == sorted(fb)
    for path in fa:
        np.testing.assert_array_equal(np.asarray(fa[path]), np.asarray(fb[path]), err_msg=path)


class Checkpoint:
    """A torch-style state dict built with the jaxlth leaves it should become (``expected``)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.file, self.expected = {}, {}

    def normal(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def conv(self, key, path, out, into, k):
        w = self.file[f"{key}.weight"] = self.normal(out, into, k, k)
        self.expected[f"params/{path}/kernel"] = np.transpose(w, (2, 3, 1, 0))  # (kh, kw, I, O)

    def linear(self, key, path, out, into):
        w = self.file[f"{key}.weight"] = self.normal(out, into)
        b = self.file[f"{key}.bias"] = self.normal(out)
        self.expected[f"params/{path}/kernel"], self.expected[f"params/{path}/bias"] = w.T, b

    def batchnorm(self, key, path, c):
        for theirs, ours in (("weight", "params/{}/scale"), ("bias", "params/{}/bias")):
            self.expected[ours.format(path)] = self.file[f"{key}.{theirs}"] = self.normal(c)
        self.expected[f"batch_stats/{path}/mean"] = self.file[f"{key}.running_mean"] = self.normal(c)
        var = self.file[f"{key}.running_var"] = self.rng.uniform(0.5, 2.0, c).astype(np.float32)
        self.expected[f"batch_stats/{path}/var"] = var
        self.file[f"{key}.num_batches_tracked"] = np.array(7, np.int64)

    def layernorm(self, key, path, d):
        self.expected[f"params/{path}/scale"] = self.file[f"{key}.weight"] = self.normal(d)
        self.expected[f"params/{path}/bias"] = self.file[f"{key}.bias"] = self.normal(d)


def torchvision_resnet50(width, classes, seed=0):
    """torchvision's ResNet-50 state dict at ``width`` (64 in torchvision)."""
    c = Checkpoint(seed)
    c.conv("conv1", "stem_conv", width, 3, 7)
    c.batchnorm("bn1", "stem_bn", width)
    into = width
    for s, blocks in enumerate((3, 4, 6, 3)):
        planes = width * 2**s
        for b in range(blocks):
            key, path = f"layer{s + 1}.{b}", f"stage{s}_block{b}"
            for k, (out, cin, size) in enumerate(((planes, into, 1), (planes, planes, 3), (4 * planes, planes, 1)), 1):
                c.conv(f"{key}.conv{k}", f"{path}/conv{k}", out, cin, size)
                c.batchnorm(f"{key}.bn{k}", f"{path}/bn{k}", out)
            if b == 0:
                c.conv(f"{key}.downsample.0", f"{path}/shortcut_conv", 4 * planes, into, 1)
                c.batchnorm(f"{key}.downsample.1", f"{path}/shortcut_bn", 4 * planes)
            into = 4 * planes
    c.linear("fc", "output", classes, into)
    return c


def patch_kernel(w):
    """The Dense kernel ``(P P C, D)`` of a patch conv ``(D, C, P, P)``, entry by entry: row
    ``(i P + j) C + c`` reads pixel (row i, column j, channel c) of a patch."""
    d, channels, p, _ = w.shape
    kernel = np.empty((p * p * channels, d), w.dtype)
    for i in range(p):
        for j in range(p):
            for ch in range(channels):
                kernel[(i * p + j) * channels + ch] = w[:, ch, i, j]
    return kernel


def vit_parts(c, side, depth, classes, head=True):
    """The random numbers of a ViT, in torch layout, with their jaxlth leaves: ``{name: array}``."""
    d, tokens = WIDTH, (side // PATCH) ** 2 + 1
    parts = {"patch.weight": c.normal(d, 3, PATCH, PATCH), "patch.bias": c.normal(d)}
    parts["cls"], parts["pos"] = c.normal(1, 1, d), c.normal(1, tokens, d)
    c.expected["params/patch_embedding/kernel"] = patch_kernel(parts["patch.weight"])
    c.expected["params/patch_embedding/bias"] = parts["patch.bias"]
    c.expected["params/cls_token"], c.expected["params/position_embedding"] = parts["cls"], parts["pos"]
    for i in range(depth):
        for name, out, into in (
            ("q", d, d),
            ("k", d, d),
            ("v", d, d),
            ("o", d, d),
            ("fc1", 4 * d, d),
            ("fc2", d, 4 * d),
        ):
            parts[f"{i}.{name}.weight"], parts[f"{i}.{name}.bias"] = c.normal(out, into), c.normal(out)
        for name in ("norm1", "norm2"):
            parts[f"{i}.{name}.weight"], parts[f"{i}.{name}.bias"] = c.normal(d), c.normal(d)
        ours = {"q": "attention/query", "k": "attention/key", "v": "attention/value", "o": "attention/out"}
        ours |= {"fc1": "mlp/fc1", "fc2": "mlp/fc2"}
        for name, path in ours.items():
            c.expected[f"params/block{i}/{path}/kernel"] = parts[f"{i}.{name}.weight"].T
            c.expected[f"params/block{i}/{path}/bias"] = parts[f"{i}.{name}.bias"]
        for name in ("norm1", "norm2"):
            c.expected[f"params/block{i}/{name}/scale"] = parts[f"{i}.{name}.weight"]
            c.expected[f"params/block{i}/{name}/bias"] = parts[f"{i}.{name}.bias"]
    parts["norm.weight"], parts["norm.bias"] = c.normal(d), c.normal(d)
    c.expected["params/norm/scale"], c.expected["params/norm/bias"] = parts["norm.weight"], parts["norm.bias"]
    if head:
        parts["head.weight"], parts["head.bias"] = c.normal(classes, d), c.normal(classes)
        c.expected["params/output/kernel"], c.expected["params/output/bias"] = (
            parts["head.weight"].T,
            parts["head.bias"],
        )
    return parts


def timm_vit(side, depth=DEPTH, classes=CLASSES, seed=0, head=True):
    c = Checkpoint(seed)
    parts = vit_parts(c, side, depth, classes, head)
    f = c.file
    f["patch_embed.proj.weight"], f["patch_embed.proj.bias"] = parts["patch.weight"], parts["patch.bias"]
    f["cls_token"], f["pos_embed"] = parts["cls"], parts["pos"]
    for i in range(depth):
        f[f"blocks.{i}.attn.qkv.weight"] = np.concatenate([parts[f"{i}.{n}.weight"] for n in "qkv"])
        f[f"blocks.{i}.attn.qkv.bias"] = np.concatenate([parts[f"{i}.{n}.bias"] for n in "qkv"])
        names = {"o": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2", "norm1": "norm1", "norm2": "norm2"}
        for ours, theirs in names.items():
            for t in ("weight", "bias"):
                f[f"blocks.{i}.{theirs}.{t}"] = parts[f"{i}.{ours}.{t}"]
    for name in ("norm", "head") if head else ("norm",):
        for t in ("weight", "bias"):
            f[f"{name}.{t}"] = parts[f"{name}.{t}"]
    return c


def hf_vit(side, depth=DEPTH, classes=CLASSES, seed=0, prefix="vit.", head=True):
    """``ViTForImageClassification`` names (``prefix="vit."``) or ``ViTModel``'s (``prefix=""``)."""
    c = Checkpoint(seed)
    parts = vit_parts(c, side, depth, classes, head)
    f, e = c.file, f"{prefix}embeddings"
    f[f"{e}.patch_embeddings.projection.weight"] = parts["patch.weight"]
    f[f"{e}.patch_embeddings.projection.bias"] = parts["patch.bias"]
    f[f"{e}.cls_token"], f[f"{e}.position_embeddings"] = parts["cls"], parts["pos"]
    for i in range(depth):
        layer = f"{prefix}encoder.layer.{i}"
        names = {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value"}
        names |= {"o": "attention.output.dense", "fc1": "intermediate.dense", "fc2": "output.dense"}
        names |= {"norm1": "layernorm_before", "norm2": "layernorm_after"}
        for ours, theirs in names.items():
            for t in ("weight", "bias"):
                f[f"{layer}.{theirs}.{t}"] = parts[f"{i}.{ours}.{t}"]
    for t in ("weight", "bias"):
        f[f"{prefix}layernorm.{t}"] = parts[f"norm.{t}"]
        if head:
            f[f"classifier.{t}"] = parts[f"head.{t}"]
    return c


def saved(tmp_path, flat, name="model.safetensors"):
    path = str(tmp_path / name)
    weights.write_safetensors(path, flat)
    return weights.read_safetensors(path)


RESNET = get_model("resnet50", CLASSES, width=8)
VIT = ViT(num_classes=CLASSES, patch_size=PATCH, width=WIDTH, depth=DEPTH, heads=HEADS)


# ----- torchvision ResNet-50 ------------------------------------------------------------------------
def test_a_torchvision_resnet50_file_loads_transposed_and_computes_the_same_logits(tmp_path):
    c = torchvision_resnet50(8, CLASSES)
    flat = saved(tmp_path, c.file)
    assert weights.detect(flat) == "torchvision_resnet"
    network, report = weights.to_network(flat, "torchvision_resnet", shapes(RESNET, 32))
    loaded = weights.flatten(network)
    assert sorted(report["loaded"]) == sorted(c.expected) == sorted(loaded)
    assert report["kept"] == [] and report["resampled"] == []
    assert sorted(report["ignored"]) == sorted(k for k in c.file if k.endswith("num_batches_tracked"))
    for path, value in c.expected.items():
        np.testing.assert_array_equal(loaded[path], value, err_msg=path)
    # two kernels element by element: conv (O, I, kh, kw) -> (kh, kw, I, O), linear (out, in) -> (in, out)
    w, kernel = c.file["layer2.0.conv2.weight"], loaded["params/stage1_block0/conv2/kernel"]
    for o, i, y, x in [(0, 0, 0, 0), (3, 5, 1, 2), (15, 15, 2, 0)]:
        assert kernel[y, x, i, o] == w[o, i, y, x]
    fc = c.file["fc.weight"]
    assert all(loaded["params/output/kernel"][i, o] == fc[o, i] for o in range(CLASSES) for i in (0, 17, 255))
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(logits(RESNET, network, x), logits(RESNET, unflatten(c.expected), x))


def test_a_resnet_round_trips_exactly_through_every_format_it_has(tmp_path):
    network = random_network(RESNET, 32)
    for fmt in ("jaxlth", "torchvision_resnet"):
        flat = saved(tmp_path, weights.from_network(network, fmt), f"{fmt}.safetensors")
        assert weights.detect(flat) == fmt
        back, report = weights.to_network(flat, fmt, shapes(RESNET, 32))
        assert_networks_equal(back, network)
        assert report["kept"] == [] and len(report["loaded"]) == len(weights.flatten(network))
        assert all(leaf.flags.writeable and leaf.flags.owndata for leaf in jax.tree.leaves(back))  # not the file's


def test_a_head_of_another_size_is_kept_fresh_and_reported(tmp_path):
    fresh = random_network(RESNET, 32)
    c = torchvision_resnet50(8, classes=7)
    network, report = weights.to_network(saved(tmp_path, c.file), "torchvision_resnet", fresh)
    assert sorted(report["kept"]) == ["params/output/bias", "params/output/kernel"]
    for leaf in ("kernel", "bias"):
        np.testing.assert_array_equal(network["params"]["output"][leaf], fresh["params"]["output"][leaf])
    np.testing.assert_array_equal(network["params"]["stem_conv"]["kernel"], c.expected["params/stem_conv/kernel"])
    # a file without the head (timm's num_classes=0) keeps it too
    del c.file["fc.weight"], c.file["fc.bias"]
    _, report = weights.to_network(c.file, "torchvision_resnet", fresh)
    assert sorted(report["kept"]) == ["params/output/bias", "params/output/kernel"]


# ----- timm and Hugging Face ViTs -------------------------------------------------------------------
@pytest.mark.parametrize("fmt, build", [("timm_vit", timm_vit), ("hf_vit", hf_vit)])
def test_a_vit_file_loads_transposed_and_computes_the_same_logits(tmp_path, fmt, build):
    c = build(16)
    flat = saved(tmp_path, c.file)
    assert weights.detect(flat) == fmt
    network, report = weights.to_network(flat, fmt, shapes(VIT, 16))
    loaded = weights.flatten(network)
    assert sorted(report["loaded"]) == sorted(c.expected) == sorted(loaded) and report["kept"] == []
    for path, value in c.expected.items():
        np.testing.assert_array_equal(loaded[path], value, err_msg=path)
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(logits(VIT, network, x), logits(VIT, unflatten(c.expected), x))


def test_timm_and_hugging_face_files_of_the_same_numbers_give_the_same_network():
    timm, _ = weights.to_network(timm_vit(16).file, "timm_vit", shapes(VIT, 16))
    hf, _ = weights.to_network(hf_vit(16).file, "hf_vit", shapes(VIT, 16))
    assert_networks_equal(timm, hf)
    bare = hf_vit(16, prefix="", head=False).file  # a ViTModel file: no vit. prefix, a pooler, no classifier
    bare["pooler.dense.weight"], bare["pooler.dense.bias"] = np.ones((WIDTH, WIDTH), np.float32), np.ones(WIDTH)
    assert weights.detect(bare) == "hf_vit"
    network, report = weights.to_network(bare, "hf_vit", shapes(VIT, 16))
    assert sorted(report["ignored"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert sorted(report["kept"]) == ["params/output/bias", "params/output/kernel"]
    np.testing.assert_array_equal(
        network["params"]["block1"]["mlp"]["fc2"]["kernel"], timm["params"]["block1"]["mlp"]["fc2"]["kernel"]
    )


def reference_timm_logits(f, images, heads):
    """timm's ViT forward pass in numpy, from the torch-layout tensors ``f`` (NHWC ``images``)."""

    def linear(x, name):
        return x @ f[f"{name}.weight"].T + f[f"{name}.bias"]

    def layernorm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-6) * f[f"{name}.weight"] + f[f"{name}.bias"]

    x = images.astype(np.float64).transpose(0, 3, 1, 2)  # NCHW
    w, p = f["patch_embed.proj.weight"], f["patch_embed.proj.weight"].shape[-1]
    n, _, h, wd = x.shape
    grid = np.zeros((n, w.shape[0], h // p, wd // p))
    for gi in range(h // p):  # the stride-P convolution, patch by patch
        for gj in range(wd // p):
            grid[:, :, gi, gj] = np.einsum("dcij,ncij->nd", w, x[:, :, gi * p : (gi + 1) * p, gj * p : (gj + 1) * p])
    tokens = grid.reshape(n, w.shape[0], -1).transpose(0, 2, 1) + f["patch_embed.proj.bias"]
    x = np.concatenate([np.broadcast_to(f["cls_token"], (n, 1, w.shape[0])), tokens], 1) + f["pos_embed"]
    d, i = x.shape[-1], 0
    while f"blocks.{i}.norm1.weight" in f:
        qkv = linear(layernorm(x, f"blocks.{i}.norm1"), f"blocks.{i}.attn.qkv")
        q, k, v = qkv.reshape(n, -1, 3, heads, d // heads).transpose(2, 0, 3, 1, 4)  # (N, heads, T, d/heads)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
        attn = np.exp(scores - scores.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        x = x + linear((attn @ v).transpose(0, 2, 1, 3).reshape(n, -1, d), f"blocks.{i}.attn.proj")
        hidden = linear(layernorm(x, f"blocks.{i}.norm2"), f"blocks.{i}.mlp.fc1")
        x = x + linear(0.5 * hidden * (1 + erf(hidden / np.sqrt(2))), f"blocks.{i}.mlp.fc2")
        i += 1
    return linear(layernorm(x, "norm")[:, 0], "head")


def test_a_loaded_timm_vit_computes_what_timm_computes():
    """An independent check of the whole mapping (patch order, fused qkv, heads), without torch."""
    f = {k: v.astype(np.float64) for k, v in timm_vit(8, depth=1, seed=3).file.items()}
    model = ViT(num_classes=CLASSES, patch_size=PATCH, width=WIDTH, depth=1, heads=HEADS)
    network, _ = weights.to_network(f, "timm_vit", shapes(model, 8))
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(logits(model, network, x), reference_timm_logits(f, x, HEADS), rtol=1e-4, atol=1e-4)


def test_a_vit_round_trips_exactly_through_every_format(tmp_path):
    network = random_network(VIT, 16)
    for fmt in ("jaxlth", "timm_vit", "hf_vit"):
        flat = saved(tmp_path, weights.from_network(network, fmt), f"{fmt}.safetensors")
        assert weights.detect(flat) == fmt
        back, report = weights.to_network(flat, fmt, shapes(VIT, 16))
        assert_networks_equal(back, network)
        assert report["kept"] == [] and report["resampled"] == []


def test_position_embeddings_of_another_grid_are_resampled_keeping_the_cls_token():
    c = timm_vit(8)  # a 2x2 grid of patches
    c.file["pos_embed"][0, 1:] = 0.25  # a constant grid stays constant under bilinear resizing
    network, report = weights.to_network(c.file, "timm_vit", shapes(VIT, 16))  # a 4x4 grid
    assert report["resampled"] == ["params/position_embedding"]
    assert "params/position_embedding" in report["loaded"]
    table = network["params"]["position_embedding"]
    assert table.shape == (1, 17, WIDTH) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0, 0], c.file["pos_embed"][0, 0])
    np.testing.assert_allclose(table[0, 1:], 0.25, rtol=1e-6)
    ramp = np.arange(17 * 2, dtype=np.float32).reshape(1, 17, 2)
    assert weights.resample_positions(ramp, 17) is ramp  # the same grid: exactly the table
    assert weights.resample_positions(ramp, 5).shape == (1, 5, 2)
    np.testing.assert_array_equal(weights.resample_positions(ramp, 5)[0, 0], ramp[0, 0])
    with pytest.raises(UserError, match="not those of a square grid"):
        weights.resample_positions(ramp, 7)


# ----- errors: one sentence each --------------------------------------------------------------------
def one_sentence(error):
    text = str(error.value)
    assert "\n" not in text and text.count(". ") == 0, text
    return text


def test_files_that_are_missing_or_not_safetensors_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist") as error:
        weights.read_safetensors(str(tmp_path / "absent.safetensors"))
    assert str(tmp_path / "absent.safetensors") in one_sentence(error)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(UserError, match="cannot be read as a .safetensors file") as error:
        weights.read_safetensors(str(junk))
    assert str(junk) in one_sentence(error)
    with pytest.raises(UserError, match="is a directory"):
        weights.read_safetensors(str(tmp_path))


def test_wrong_shapes_unknown_names_and_another_model_are_one_sentence():
    c = torchvision_resnet50(8, CLASSES)
    resnet, vit = shapes(RESNET, 32), shapes(VIT, 16)
    wrong = dict(c.file, **{"layer1.0.conv2.weight": np.zeros((8, 8, 5, 5), np.float32)})
    with pytest.raises(UserError) as error:
        weights.to_network(wrong, "torchvision_resnet", resnet)
    text = one_sentence(error)
    assert "params/stage0_block0/conv2/kernel" in text and "(5, 5, 8, 8)" in text and "(3, 3, 8, 8)" in text
    with pytest.raises(UserError, match="has shape .* which does not fit"):
        weights.to_network(dict(c.file, **{"conv1.weight": np.zeros((8, 3), np.float32)}), "torchvision_resnet", resnet)
    unknown = dict(c.file, **{"layer1.0.se.fc.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(UserError, match="'layer1.0.se.fc.weight'") as error:
        weights.detect(unknown)
    one_sentence(error)
    with pytest.raises(UserError, match="'layer1.0.se.fc.weight' is no torchvision_resnet name"):
        weights.to_network(unknown, "torchvision_resnet", resnet)
    with pytest.raises(
        UserError, match="none of the checkpoint's torchvision_resnet tensors but the head fit this network"
    ) as e:
        weights.to_network(c.file, weights.detect(c.file), vit)  # a ResNet file for a ViT
    one_sentence(e)
    deeper = dict(c.file, **{"layer1.3.conv1.weight": np.zeros((8, 32, 1, 1), np.float32)})
    with pytest.raises(UserError, match="'layer1.3.conv1.weight' would be params/stage0_block3/conv1/kernel"):
        weights.to_network(deeper, "torchvision_resnet", resnet)
    with pytest.raises(UserError, match="unknown checkpoint format 'torch'"):
        weights.to_network(c.file, "torch", resnet)
    with pytest.raises(UserError, match="has no name in the timm_vit format"):
        weights.from_network(random_network(RESNET, 32), "timm_vit")
    with pytest.raises(UserError, match="holds no tensors"):
        weights.detect({})


def test_the_vit_errors_name_the_parameter_and_both_shapes():
    c = timm_vit(16)
    c.file["blocks.1.mlp.fc1.weight"] = np.zeros((32, WIDTH), np.float32)
    with pytest.raises(UserError) as error:
        weights.to_network(c.file, "timm_vit", shapes(VIT, 16))
    text = one_sentence(error)
    assert "params/block1/mlp/fc1/kernel" in text and "(16, 32)" in text and "(16, 64)" in text


def test_other_dtypes_are_cast_to_the_template_s(tmp_path):
    c = timm_vit(16)
    flat = saved(tmp_path, {k: v.astype(np.float16) for k, v in c.file.items()})
    network, _ = weights.to_network(flat, "timm_vit", shapes(VIT, 16))
    kernel = network["params"]["block0"]["attention"]["query"]["kernel"]
    assert kernel.dtype == np.float32 and kernel.flags.c_contiguous and kernel.flags.writeable
    np.testing.assert_array_equal(kernel, c.expected["params/block0/attention/query/kernel"].astype(np.float16))


# ----- the benchmark --------------------------------------------------------------------------------
def test_the_load_benchmark_prints_its_table(capsys):
    from jaxlth import bench

    bench.main(["load", "--model", "resnet18", "--mb", "0.5", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "| the file's bytes (open().read()) |" in out and "| read_safetensors + to_network" in out
    assert "load / bytes: " in out and "(target <= 2x)" in out
    seconds = load_speed.suite("resnet18", 0.5, 1)
    assert seconds["bytes"] > 0 and seconds["load"] > 0
    with pytest.raises(UserError, match="reads ImageNet ResNets"):
        load_speed.suite("lenet", None, 1)
