"""VGG for CIFAR-10 (Simonyan & Zisserman 2015), as in OpenLTH's ``cifar_vgg_{11,13,16,19}``.

Each number in the plan is a 3x3 convolution (with bias, as OpenLTH's ``nn.Conv2d`` default)
followed by BatchNorm and ReLU; each ``"M"`` a 2x2 max-pool. The plans have no final
max-pool: after the last convolution (2x2 spatial on 32x32 inputs) a 2x2 average pool,
flatten and a single linear ``output`` layer (no hidden Dense layers), exactly as OpenLTH.
VGG-16 has 14,728,266 parameters with 10 classes (batch statistics not counted).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxlth.models import init

PLANS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512),
}


class VGG(nn.Module):
    """VGG with a ``plan`` of filter counts and ``"M"``; ``(N, H, W, C)`` -> ``(N, num_classes)``."""

    num_classes: int
    plan: Sequence[int | str] = PLANS[16]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        i = 0
        for spec in self.plan:
            if spec == "M":
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            else:
                x = init.conv(x, spec, 3, name=f"conv_{i}")
                x = nn.relu(init.batch_norm(x, train, name=f"bn_{i}"))
                i += 1
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return init.dense(x, self.num_classes, name="output")
