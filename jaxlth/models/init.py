"""Initialisers and initialised layers, as in OpenLTH (Frankle et al.'s reference code).

OpenLTH initialises the kernels of Dense and Conv layers with Kaiming-normal (fan_in, gain
sqrt(2), a plain normal, not truncated), leaves biases at PyTorch's default (uniform in
``±1/sqrt(fan_in)``) and draws BatchNorm scales uniformly in [0, 1) with shifts at 0.

The layer helpers below are called inside an ``nn.compact`` method: they create the Flax
module with these initialisers (the bias initialiser needs the fan-in, read from ``x``),
apply it to ``x`` and return the result. Padding is explicit and symmetric (``k // 2`` on
each side), as in PyTorch, so strided convolutions see the same pixels as the reference code.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1: running = 0.9 * running + 0.1 * batch.
BN_EPSILON = 1e-5


def kaiming_normal() -> nn.initializers.Initializer:
    """Kaiming-normal kernel initialiser: ``N(0, 2 / fan_in)``, not truncated."""
    return nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def torch_bias(fan_in: int) -> nn.initializers.Initializer:
    """PyTorch's default bias initialiser for a layer with ``fan_in`` inputs per output.

    Draws uniformly in ``[-1/sqrt(fan_in), 1/sqrt(fan_in))``; works for any bias shape.
    """
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def bn_scale() -> nn.initializers.Initializer:
    """BatchNorm scale initialiser: uniform in [0, 1)."""
    return nn.initializers.uniform(scale=1.0)


def dense(x: jax.Array, features: int, *, name: str | None = None) -> jax.Array:
    """``(..., d) -> (..., features)`` Dense layer with OpenLTH's initialisation."""
    return nn.Dense(features, kernel_init=kaiming_normal(), bias_init=torch_bias(x.shape[-1]), name=name)(x)


def conv(
    x: jax.Array,
    features: int,
    kernel: int,
    *,
    strides: int = 1,
    use_bias: bool = True,
    name: str | None = None,
) -> jax.Array:
    """``(N, H, W, C) -> (N, H', W', features)`` square convolution, PyTorch padding ``kernel // 2``."""
    fan_in = kernel * kernel * x.shape[-1]
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        kernel_init=kaiming_normal(),
        bias_init=torch_bias(fan_in),
        name=name,
    )(x)


def batch_norm(x: jax.Array, train: bool, *, name: str | None = None) -> jax.Array:
    """BatchNorm over the last axis; batch statistics in train mode, running ones otherwise."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        scale_init=bn_scale(),
        bias_init=nn.initializers.zeros,
        name=name,
    )(x)
