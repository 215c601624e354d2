"""Models: registry, parameter counts, output shapes, BatchNorm state and OpenLTH initialisation."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import models
from jaxlth.errors import UserError
from jaxlth.models import init

IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


# ----- parameter counts by formula ---------------------------------------------------------------
def conv_params(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def dense_params(d_in, d_out):
    return d_in * d_out + d_out


def bn_params(c):
    return 2 * c  # scale and bias; running mean/var are batch_stats, not params


def conv_net_count(pairs, classes=10):
    """Conv-2/4/6 on 32x32x3: conv pairs, a 2x2 max-pool per pair, Dense 256, 256, output."""
    total, c_in = 0, 3
    for c in (64, 128, 256)[:pairs]:
        total += conv_params(3, c_in, c) + conv_params(3, c, c)
        c_in = c
    side = 32 // 2**pairs
    return total + dense_params(side * side * c_in, 256) + dense_params(256, 256) + dense_params(256, classes)


def resnet_cifar_count(depth, width=16, classes=10):
    """Stem conv+BN; per block two conv3x3+BN; a 1x1 conv+BN shortcut at stages 2 and 3; output."""
    n = (depth - 2) // 6
    total = conv_params(3, 3, width, bias=False) + bn_params(width)
    c_in = width
    for stage in range(3):
        c = width * 2**stage
        for _ in range(n):
            total += conv_params(3, c_in, c, False) + conv_params(3, c, c, False) + 2 * bn_params(c)
            if c_in != c:
                total += conv_params(1, c_in, c, False) + bn_params(c)
            c_in = c
    return total + dense_params(4 * width, classes)


def vgg_count(plan, classes=10):
    """Per plan number: conv3x3 with bias + BN; then the 512 -> classes output layer."""
    total, c_in = 0, 3
    for spec in plan:
        if spec != "M":
            total += conv_params(3, c_in, spec) + bn_params(spec)
            c_in = spec
    return total + dense_params(512, classes)


VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

# (name, options, num_classes, input shape, expected parameter count)
COUNTS = [
    # 784*300+300 + 300*100+100 + 100*10+10
    ("lenet_300_100", {}, 10, (28, 28, 1), 266_610),
    ("lenet", {}, 10, (28, 28, 1), 266_610),
    ("lenet", {"widths": [32, 16]}, 10, (40, 1), dense_params(40, 32) + dense_params(32, 16) + dense_params(16, 10)),
    ("conv2", {}, 10, (32, 32, 3), 4_301_642),  # = conv_net_count(1), Frankle & Carbin: 4.3M
    ("conv4", {}, 10, (32, 32, 3), 2_425_930),  # = conv_net_count(2): 2.4M
    ("conv6", {}, 10, (32, 32, 3), 2_262_602),  # = conv_net_count(3): 2.3M
    # ConvNet-3: 3 x (3x3 conv + bias, instance-norm scale + shift) + dense 4*4*128 -> 10; the papers' ~320K
    ("convnet", {}, 10, (32, 32, 3), conv_params(3, 3, 128) + 2 * conv_params(3, 128, 128) + 6 * 128 + 20_490),
    # no norm, 28 -> 14 -> 7 after two pools: 7*7*16 features
    ("convnet", {"depth": 2, "width": 16, "norm": "none"}, 10, (28, 28, 1), 160 + 2320 + dense_params(784, 10)),
    ("resnet20", {}, 10, (32, 32, 3), 272_474),  # = resnet_cifar_count(20), OpenLTH's 272,474
    ("resnet56", {}, 10, (32, 32, 3), 855_770),  # = resnet_cifar_count(56)
    ("resnet_cifar", {"depth": 32, "width": 32}, 100, (32, 32, 3), resnet_cifar_count(32, 32, 100)),
    ("resnet20", {"width": 64}, 10, (32, 32, 3), resnet_cifar_count(20, 64)),
    ("vgg16", {}, 10, (32, 32, 3), 14_728_266),  # = vgg_count(VGG16_PLAN)
    ("vgg11", {}, 10, (32, 32, 3), 9_231_114),  # = vgg_count(vgg11 plan)
    ("vgg19", {}, 10, (32, 32, 3), 20_040_522),  # = vgg_count(vgg19 plan)
    # torchvision.models.resnet{18,34,50}(num_classes=1000), sum of p.numel() over parameters()
    ("resnet18", {}, 1000, (224, 224, 3), 11_689_512),
    ("resnet34", {}, 1000, (224, 224, 3), 21_797_672),
    ("resnet50", {}, 1000, (224, 224, 3), 25_557_032),
    # CIFAR stem: resnet18 - 7x7x3x64 stem + 3x3x3x64 stem - 512*1000+1000 fc + 512*10+10 fc
    ("resnet18", {"small_images": True}, 10, (32, 32, 3), 11_689_512 - 9408 + 1728 - 513_000 + 5130),
    # BERT inputs are tokens (2, T). Hugging Face's BertForSequenceClassification, 2 labels: BertModel's
    # 109,482,240 + 768*2+2; BERT-Tiny (L=2, H=128): 3,972,864 embeddings + 2 x 198,272 + pooler 16,512 + 258
    ("bert_base", {}, 2, (2, 16), 109_483_778),
    ("bert_tiny", {}, 2, (2, 16), 4_386_178),
]


@functools.lru_cache(maxsize=None)
def abstract(name, options, num_classes, shape, batch=2):
    """``(variables, logits)`` as ShapeDtypeStructs, without running the model."""
    model = models.get_model(name, num_classes, **dict(options))
    x = jax.ShapeDtypeStruct((batch, *shape), jnp.int32 if is_bert(name) else jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    return variables, logits


def is_bert(name):
    """BERTs read int32 tokens ``(N, 2, T)`` (ids, types), not float images."""
    return name.startswith("bert")


def _freeze(options):
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(options.items()))


def test_formulas_agree_with_the_written_counts():
    assert conv_net_count(1) == 4_301_642
    assert conv_net_count(2) == 2_425_930
    assert conv_net_count(3) == 2_262_602
    assert resnet_cifar_count(20) == 272_474
    assert resnet_cifar_count(56) == 855_770
    assert vgg_count(VGG16_PLAN) == 14_728_266


@pytest.mark.parametrize("name,options,num_classes,shape,expected", COUNTS, ids=lambda v: str(v))
def test_param_count(name, options, num_classes, shape, expected):
    variables, logits = abstract(name, _freeze(options), num_classes, shape)
    assert models.param_count(variables["params"]) == expected
    assert logits.shape == (2, num_classes)
    assert logits.dtype == jnp.float32


@pytest.mark.parametrize("name", models.names())
def test_every_model_has_output_layer_and_logits(name):
    num_classes = 1000 if name in IMAGENET else 10
    shape = (64, 64, 3) if name in IMAGENET else (32, 32, 3)
    shape = (2, 16) if is_bert(name) else shape
    variables, logits = abstract(name, (), num_classes, shape, batch=3)
    assert logits.shape == (3, num_classes)
    params = variables["params"]
    assert params["output"]["kernel"].shape[-1] == num_classes
    assert params["output"]["bias"].shape == (num_classes,)
    # Only the classifier may match the pruning recipes' "output" pattern.
    paths = ["/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    assert [p for p in paths if "output" in p] == ["output/bias", "output/kernel"]
    has_bn = not name.startswith(("lenet", "conv", "vit", "bert"))
    assert ("batch_stats" in variables) == has_bn


# ----- real initialisation and application of the small models --------------------------------
# ResNet-8 (one block per stage) has every layer kind of ResNet-20 and compiles three times faster.
SMALL_RESNET = ("resnet_cifar", (32, 32, 3), (("depth", 8),))


def initialised(name, shape=(32, 32, 3), options=()):
    """``(model, variables, apply)`` with real parameters; ``apply(variables, x, train)`` is jitted."""
    return _initialised(name, tuple(shape), tuple(options))


@functools.lru_cache(maxsize=None)
def _initialised(name, shape, options):
    model = models.get_model(name, 10, **dict(options))
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, *shape)), train=False))(jax.random.key(0))

    @functools.partial(jax.jit, static_argnames="train")
    def apply(variables, x, train):
        """``(logits, new batch_stats)``; the latter ``{}`` without BatchNorm."""
        if "batch_stats" not in variables:
            return model.apply(variables, x, train=train), {}
        logits, updates = model.apply(variables, x, train=train, mutable=["batch_stats"])
        return logits, updates["batch_stats"]

    return model, variables, apply


@pytest.mark.parametrize(
    "name,shape,options",
    [
        ("lenet_300_100", (28, 28, 1), ()),
        ("conv2", (32, 32, 3), ()),
        ("convnet", (28, 28, 1), (("width", 8),)),
        SMALL_RESNET,
    ],
)
def test_apply_gives_finite_logits(name, shape, options):
    _, variables, apply = initialised(name, shape, options)
    x = jax.random.normal(jax.random.key(1), (8, *shape))
    for train in (False, True):
        logits, _ = apply(variables, x, train)
        assert logits.shape == (8, 10)
        assert bool(jnp.all(jnp.isfinite(logits)))


def test_batch_stats_update_in_train_mode_only():
    _, variables, apply = initialised(*SMALL_RESNET)
    x = 3.0 + jax.random.normal(jax.random.key(2), (8, 32, 32, 3))
    _, updated = apply(variables, x, True)
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updated)
    assert len(before) == len(after) > 0
    assert all(not np.allclose(a, b) for a, b in zip(before, after))
    # Momentum 0.9 (PyTorch's 0.1): the stem's running mean moves 10% of the way to the batch mean.
    kernel = variables["params"]["stem_conv"]["kernel"]
    stem_out = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    batch_mean = jnp.mean(stem_out, axis=(0, 1, 2))
    expected = 0.9 * variables["batch_stats"]["stem_bn"]["mean"] + 0.1 * batch_mean
    np.testing.assert_allclose(updated["stem_bn"]["mean"], expected, rtol=1e-4, atol=1e-5)
    # In eval mode the running statistics are used and left alone.
    _, same = apply(variables, x, False)
    jax.tree.map(np.testing.assert_array_equal, same, variables["batch_stats"])


def test_kaiming_normal_kernels():
    _, variables, _ = initialised("lenet_300_100", (28, 28, 1))
    w = np.asarray(variables["params"]["hidden_0"]["kernel"])  # (784, 300): 235,200 draws
    std = math.sqrt(2.0 / 784)
    assert abs(w.mean()) < 0.01 * std
    assert abs(w.std() / std - 1) < 0.01
    # A plain normal, not truncated at 2 std: 4.55% of the draws lie beyond 2 std.
    assert abs(np.mean(np.abs(w) > 2 * std) - 0.0455) < 0.003
    assert np.abs(w).max() > 4 * std

    _, variables, _ = initialised("conv2")
    k = np.asarray(variables["params"]["conv_1"]["kernel"])  # (3, 3, 64, 64), fan_in 576
    assert k.shape == (3, 3, 64, 64)
    assert abs(k.std() / math.sqrt(2.0 / 576) - 1) < 0.02


def test_torch_default_biases():
    for name, shape, layer, fan_in in [
        ("lenet_300_100", (28, 28, 1), "hidden_0", 784),
        ("lenet_300_100", (28, 28, 1), "output", 100),
        ("conv2", (32, 32, 3), "conv_0", 27),
        ("conv2", (32, 32, 3), "dense_0", 16 * 16 * 64),
    ]:
        _, variables, _ = initialised(name, shape)
        b = np.asarray(variables["params"][layer]["bias"])
        bound = 1 / math.sqrt(fan_in)
        assert np.all(np.abs(b) <= bound), (name, layer)
        if b.size >= 64:  # uniform over the whole range, not zeros
            assert np.abs(b).max() > 0.8 * bound, (name, layer)


def test_batchnorm_init():
    _, variables, _ = initialised(*SMALL_RESNET)
    layers = _bn_layers(variables["params"])
    assert len(layers) == 9  # stem + 2 per block * 3 blocks + 2 shortcuts
    scales = np.concatenate([np.asarray(v["scale"]) for v in layers])
    biases = np.concatenate([np.asarray(v["bias"]) for v in layers])
    assert np.all((scales >= 0) & (scales <= 1))
    assert 0.4 < scales.mean() < 0.6  # uniform, not ones
    np.testing.assert_array_equal(biases, 0)
    for stats in _bn_layers(variables["batch_stats"]):
        np.testing.assert_array_equal(stats["mean"], 0)
        np.testing.assert_array_equal(stats["var"], 1)
    # Convolutions of the ResNets have no bias.
    assert "bias" not in variables["params"]["stem_conv"]


def test_strided_conv_pads_like_pytorch():
    """A 3x3/2 conv pads one pixel on each side (PyTorch ``padding=1``), not flax's 'SAME' (0, 1)."""

    class Strided(nn.Module):
        @nn.compact
        def __call__(self, x):
            return init.conv(x, 1, 3, strides=2, use_bias=False, name="c")

    x = jnp.zeros((1, 4, 4, 1)).at[0, 2, 2, 0].set(1.0)
    out = Strided().apply({"params": {"c": {"kernel": jnp.ones((3, 3, 1, 1))}}}, x)[0, :, :, 0]
    # Output pixel (i, j) is centred on input (2i, 2j): only (1, 1) sees the impulse at (2, 2).
    np.testing.assert_array_equal(out, [[0.0, 0.0], [0.0, 1.0]])


def _bn_layers(tree):
    """The BatchNorm sub-dicts of a params or batch_stats tree."""
    found = []
    for key, value in tree.items():
        if "bn" in key:
            found.append(value)
        elif isinstance(value, dict):
            found.extend(_bn_layers(value))
    return found


# ----- registry ---------------------------------------------------------------------------------
def test_registry_names():
    assert models.names() == sorted(models.MODELS)
    for name in [
        "lenet",
        "lenet_300_100",
        "conv2",
        "conv4",
        "conv6",
        "convnet",
        "resnet_cifar",
        "resnet20",
        "resnet56",
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "resnet18",
        "resnet50",
        "bert",
        "bert_tiny",
        "bert_base",
    ]:
        assert name in models.MODELS


def test_unknown_model():
    with pytest.raises(UserError) as err:
        models.get_model("resnet1000", 10)
    message = str(err.value)
    assert message.startswith("unknown model 'resnet1000'; known models: ")
    assert all(name in message for name in models.names())


@pytest.mark.parametrize(
    "name,options,words",
    [
        ("lenet_300_100", {"widths": (10,)}, ["'widths'", "no options"]),
        ("resnet20", {"depth": 32}, ["'depth'", "width"]),
        ("vgg16", {"batchnorm": False}, ["'batchnorm'"]),
        ("resnet_cifar", {"depth": 21}, ["6n + 2", "21"]),
        ("resnet_cifar", {"width": 0}, ["width", "0"]),
        ("lenet", {"widths": "300"}, ["widths"]),
        ("resnet50", {"small_images": "yes"}, ["small_images"]),
        ("convnet", {"norm": "batch"}, ["norm", "instance, none", "'batch'"]),
        ("convnet", {"depth": 0}, ["depth", "0"]),
    ],
)
def test_bad_options(name, options, words):
    with pytest.raises(UserError) as err:
        models.get_model(name, 10, **options)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_convnet_normalises_each_image_alone_and_initialises_as_pytorch():
    """Instance norm: an image's logits do not depend on the rest of its batch, and each norm layer's
    output has mean 0 and variance 1 per image and channel; kernels are U(±1/sqrt(fan_in))."""
    model, variables, _ = initialised("convnet", (16, 16, 3), (("width", 8),))
    x = jax.random.normal(jax.random.key(3), (4, 16, 16, 3))
    together = model.apply(variables, x, train=True)
    alone = model.apply(variables, x[:1], train=True)
    np.testing.assert_allclose(together[:1], alone, rtol=1e-5, atol=1e-6)
    _, state = model.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
    normed = state["intermediates"]["norm_0"]["__call__"][0]
    scale, shift = variables["params"]["norm_0"]["scale"], variables["params"]["norm_0"]["bias"]
    standard = (normed - shift) / scale
    np.testing.assert_allclose(standard.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(standard.var(axis=(1, 2)), 1, rtol=1e-3)
    kernel = variables["params"]["conv_1"]["kernel"]  # fan_in 9 * 8 = 72
    bound = 1 / np.sqrt(72)
    assert float(jnp.max(jnp.abs(kernel))) <= bound and float(jnp.std(kernel)) > 0.5 * bound / np.sqrt(3)


@pytest.mark.parametrize(
    "shape,kernel,padding",
    [((2, 9, 7, 3), (3, 3, 3, 5), ((1, 1), (1, 1))), ((1, 6, 6, 2), (2, 3, 2, 4), ((0, 0), (1, 0)))],
)
def test_patch_conv_is_xlas_convolution_with_its_gradients(shape, kernel, padding):
    from jaxlth.models.convnet import patch_conv

    x = jax.random.normal(jax.random.key(4), shape)
    w = jax.random.normal(jax.random.key(5), kernel)
    numbers = jax.lax.conv_dimension_numbers(shape, kernel, ("NHWC", "HWIO", "NHWC"))

    def both(conv):
        out = conv(x, w, (1, 1), padding, dimension_numbers=numbers)
        grads = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1, 1), padding, dimension_numbers=numbers))), (0, 1))
        return out, *grads(x, w)

    for ours, xla in zip(both(patch_conv), both(jax.lax.conv_general_dilated)):
        assert ours.shape == xla.shape
        np.testing.assert_allclose(ours, xla, rtol=1e-5, atol=1e-5)


def test_bad_num_classes():
    with pytest.raises(UserError, match="num_classes"):
        models.get_model("conv2", 0)


def test_param_count_of_arrays_and_shapes():
    tree = {"a": jnp.zeros((2, 3)), "b": {"c": jax.ShapeDtypeStruct((4,), jnp.float32)}}
    assert models.param_count(tree) == 10
    assert models.param_count({}) == 0
