"""The CIFAR ResNets of He et al. 2016 (Sec. 4.2), as in OpenLTH's ``cifar_resnet_D[_W]``.

A 3x3 convolution with ``width`` filters, BatchNorm and ReLU; three stages of
``n = (depth - 2) / 6`` basic blocks with ``width``, ``2 width`` and ``4 width`` filters (the
first block of stages 2 and 3 has stride 2); global average pooling; the ``output`` Dense layer.
A basic block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (identity, or a strided 1x1
convolution + BN where the shape changes), then ReLU. Convolutions have no bias.
ResNet-20 (width 16) has 272,474 parameters with 10 classes (batch statistics not counted).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlth.models import init


class BasicBlock(nn.Module):
    """Residual block; ``(N, H, W, C) -> (N, H / strides, W / strides, features)``."""

    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = init.conv(x, self.features, 3, strides=self.strides, use_bias=False, name="conv1")
        y = nn.relu(init.batch_norm(y, train, name="bn1"))
        y = init.conv(y, self.features, 3, use_bias=False, name="conv2")
        y = init.batch_norm(y, train, name="bn2")
        if self.strides != 1 or x.shape[-1] != self.features:
            x = init.conv(x, self.features, 1, strides=self.strides, use_bias=False, name="shortcut_conv")
            x = init.batch_norm(x, train, name="shortcut_bn")
        return nn.relu(x + y)


class CifarResNet(nn.Module):
    """ResNet-``depth``; ``x`` ``(N, H, W, C)`` -> logits ``(N, num_classes)``. ``depth = 6n + 2``."""

    num_classes: int
    depth: int = 20
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        blocks_per_stage = (self.depth - 2) // 6
        x = init.conv(x, self.width, 3, use_bias=False, name="stem_conv")
        x = nn.relu(init.batch_norm(x, train, name="stem_bn"))
        for stage in range(3):
            for block in range(blocks_per_stage):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(self.width * 2**stage, strides, name=f"stage{stage}_block{block}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return init.dense(x, self.num_classes, name="output")
