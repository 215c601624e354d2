"""LeNet, the fully connected network of the MNIST experiments.

LeNet-300-100 (LeCun et al. 1998) as used by Frankle & Carbin 2019 and OpenLTH's
``mnist_lenet_300_100``: the input is flattened, then Dense + ReLU for each hidden width,
then the linear ``output`` layer. With 784 inputs and 10 classes it has 266,610 parameters.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxlth.models import init


class LeNet(nn.Module):
    """Multi-layer perceptron; ``x`` of any shape ``(N, ...)`` -> logits ``(N, num_classes)``."""

    num_classes: int
    widths: Sequence[int] = (300, 100)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        del train  # No dropout or BatchNorm.
        x = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.widths):
            x = nn.relu(init.dense(x, width, name=f"hidden_{i}"))
        return init.dense(x, self.num_classes, name="output")
