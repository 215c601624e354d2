"""Conv-2, Conv-4 and Conv-6, the VGG-like CIFAR-10 networks of Frankle & Carbin 2019.

Architecture (the paper's table of architectures): pairs of 3x3 'SAME' convolutions with ReLU
and biases, 64,64 (+128,128 (+256,256)) filters, a 2x2 max-pool after each pair; then the
flattened features go through Dense 256, Dense 256 (ReLU) and the linear ``output`` layer.
No BatchNorm or dropout. Parameter counts with 10 classes on 32x32x3 inputs:
Conv-2 4,301,642; Conv-4 2,425,930; Conv-6 2,262,602 (the paper's 4.3M, 2.4M, 2.3M).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxlth.models import init


class ConvNet(nn.Module):
    """Conv-N; ``x`` ``(N, H, W, C)`` -> logits ``(N, num_classes)``.

    ``filters`` lists one entry per pair of convolutions (Conv-6: ``(64, 128, 256)``).
    """

    num_classes: int
    filters: Sequence[int] = (64, 128, 256)
    dense_widths: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # No dropout or BatchNorm.
        for i, features in enumerate(self.filters):
            x = nn.relu(init.conv(x, features, 3, name=f"conv_{2 * i}"))
            x = nn.relu(init.conv(x, features, 3, name=f"conv_{2 * i + 1}"))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.dense_widths):
            x = nn.relu(init.dense(x, width, name=f"dense_{i}"))
        return init.dense(x, self.num_classes, name="output")
