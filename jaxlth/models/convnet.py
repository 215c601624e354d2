"""ConvNet-D, the network of the dataset-distillation papers (Zhao et al. 2021; Cazenavette et al. 2022).

``depth`` blocks of a 3x3 convolution (``width`` filters, padding 1, bias), instance normalisation
(``norm="instance"``: a GroupNorm with one channel per group and a learned scale and shift; ``"none"``
leaves it out), ReLU and a 2x2 average pool of stride 2; then the flattened features go through the
linear ``output`` layer. ConvNet-3 (depth 3, width 128) on 32x32x3 images with 10 classes has 320,010
parameters (the distillation papers' "ConvNet", ~320K). Initialisation is PyTorch's default, as in the
code that defines this network: kernels and biases uniform in ``±1/sqrt(fan_in)``.

On a CPU its convolutions are matrix products of image patches (:func:`patch_conv`): the same function,
but XLA:CPU ran a Conv-2 layer's kernel gradient 12x slower than its forward pass here and any convolution
~30x slower inside a loop (jax-ml/jax#12868), and dataset distillation differentiates through a loop of
SGD steps. A Fashion-MNIST MTT iteration of ConvNet-3 at width 32 (20 student steps on 100 images)
took 51 s with XLA's convolutions and 5.9 s with patches on this project's 2-core CPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxlth.models.init import torch_bias

NORMS = ("instance", "none")


def _torch_kernel() -> nn.initializers.Initializer:
    """PyTorch's default kernel initialiser (Kaiming-uniform with a = sqrt(5)): ``U(±1/sqrt(fan_in))``."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def patch_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
               feature_group_count=1, precision=None, **_) -> jax.Array:  # fmt: skip
    """``lax.conv_general_dilated`` for NHWC inputs, HWIO kernels, stride 1 and explicit padding, as one
    matrix product: ``(N, H', W', kh kw C) @ (kh kw C, F)``, the patches gathered by shifted slices."""
    kh, kw = rhs.shape[:2]
    xp = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    h, w = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    patches = jnp.concatenate([xp[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
    return lax.dot_general(patches, rhs.reshape(-1, rhs.shape[-1]), (((3,), (0,)), ((), ())), precision=precision)


class DistillConvNet(nn.Module):
    """ConvNet-``depth``; ``x`` ``(N, H, W, C)`` -> logits ``(N, num_classes)``."""

    num_classes: int
    depth: int = 3
    width: int = 128
    norm: str = "instance"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # instance normalisation uses each image's own statistics: no running state
        on_cpu = jax.default_backend() == "cpu"
        conv = {"conv_general_dilated": patch_conv} if on_cpu else {}
        for i in range(self.depth):
            fan_in = 9 * x.shape[-1]
            x = nn.Conv(
                self.width, (3, 3), padding=((1, 1), (1, 1)), kernel_init=_torch_kernel(),
                bias_init=torch_bias(fan_in), name=f"conv_{i}", **conv,
            )(x)  # fmt: skip
            if self.norm == "instance":
                x = nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-5, name=f"norm_{i}")(x)
            x = nn.avg_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(
            self.num_classes, kernel_init=_torch_kernel(), bias_init=torch_bias(x.shape[-1]), name="output"
        )(x)
