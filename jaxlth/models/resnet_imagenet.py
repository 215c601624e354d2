"""ImageNet ResNets (He et al. 2016) in torchvision's layout, as OpenLTH's ``imagenet_resnet_D[_W]``.

A 7x7/2 convolution, BatchNorm, ReLU and a 3x3/2 max-pool; four stages of residual blocks with
``width``, ``2 width``, ``4 width``, ``8 width`` filters (stride 2 in the first block of stages
2-4); global average pooling; the ``output`` Dense layer. ResNet-18/34 use basic blocks
(conv3x3-BN-ReLU-conv3x3-BN), ResNet-50/101/152 bottlenecks (conv1x1-BN-ReLU-conv3x3-BN-ReLU-
conv1x1-BN with 4x expansion, the stride on the 3x3 conv: "ResNet v1.5"). The shortcut is a
strided 1x1 conv + BN where the shape changes. Convolutions have no bias. With 1000 classes
ResNet-18 has 11,689,512 and ResNet-50 25,557,032 parameters, as torchvision.

``small_images=True`` swaps the stem for a 3x3/1 convolution without max-pool, the usual
CIFAR variant of ResNet-18 (as in Paul et al. 2021, Deep Learning on a Data Diet).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlth.models import init
from jaxlth.models.resnet_cifar import BasicBlock


class Bottleneck(nn.Module):
    """Bottleneck block; ``(N, H, W, C) -> (N, H / strides, W / strides, 4 features)``."""

    features: int
    strides: int = 1
    expansion: int = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out = self.features * self.expansion
        y = init.conv(x, self.features, 1, use_bias=False, name="conv1")
        y = nn.relu(init.batch_norm(y, train, name="bn1"))
        y = init.conv(y, self.features, 3, strides=self.strides, use_bias=False, name="conv2")
        y = nn.relu(init.batch_norm(y, train, name="bn2"))
        y = init.conv(y, out, 1, use_bias=False, name="conv3")
        y = init.batch_norm(y, train, name="bn3")
        if self.strides != 1 or x.shape[-1] != out:
            x = init.conv(x, out, 1, strides=self.strides, use_bias=False, name="shortcut_conv")
            x = init.batch_norm(x, train, name="shortcut_bn")
        return nn.relu(x + y)


# depth -> (block kind, blocks per stage), as torchvision.
LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class ImageNetResNet(nn.Module):
    """ResNet; ``x`` ``(N, H, W, C)`` -> logits ``(N, num_classes)``."""

    num_classes: int
    block: str = "bottleneck"  # "basic" or "bottleneck"
    stages: Sequence[int] = (3, 4, 6, 3)
    width: int = 64
    small_images: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.small_images:
            x = init.conv(x, self.width, 3, use_bias=False, name="stem_conv")
            x = nn.relu(init.batch_norm(x, train, name="stem_bn"))
        else:
            x = init.conv(x, self.width, 7, strides=2, use_bias=False, name="stem_conv")
            x = nn.relu(init.batch_norm(x, train, name="stem_bn"))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        block_cls = BasicBlock if self.block == "basic" else Bottleneck
        for stage, num_blocks in enumerate(self.stages):
            for block in range(num_blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = block_cls(self.width * 2**stage, strides, name=f"stage{stage}_block{block}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return init.dense(x, self.num_classes, name="output")
