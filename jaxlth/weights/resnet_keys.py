"""torchvision's ResNet names (timm's ``resnet*`` checkpoints use the same), as jaxlth's ResNets.

======================================  =========================================
torchvision                             jaxlth (:mod:`jaxlth.models.resnet_imagenet`)
======================================  =========================================
``conv1``                               ``stem_conv``
``bn1``                                 ``stem_bn``
``layer{s}.{b}.conv{k}`` / ``bn{k}``    ``stage{s-1}_block{b}/conv{k}`` / ``bn{k}``
``layer{s}.{b}.downsample.0`` / ``.1``  ``stage{s-1}_block{b}/shortcut_conv`` / ``shortcut_bn``
``fc``                                  ``output``
======================================  =========================================

BatchNorm ``weight``, ``bias``, ``running_mean``, ``running_var`` are ``params`` ``scale``, ``bias``
and ``batch_stats`` ``mean``, ``var``; ``num_batches_tracked`` is read past. The same names fit
the basic-block ResNets (18, 34) and the CIFAR ResNets (three stages).
"""

from jaxlth.weights.layers import BATCHNORM, CONV, LINEAR
from jaxlth.weights.names import Names, Rule

_STAGE = (("s", 1),)  # torchvision counts layers from 1, jaxlth stages from 0

TORCHVISION = Names(
    "torchvision_resnet",
    (
        Rule("conv1", "stem_conv", CONV),
        Rule("bn1", "stem_bn", BATCHNORM),
        Rule("layer{s}.{b}.conv{k}", "stage{s}_block{b}/conv{k}", CONV, _STAGE),
        Rule("layer{s}.{b}.bn{k}", "stage{s}_block{b}/bn{k}", BATCHNORM, _STAGE),
        Rule("layer{s}.{b}.downsample.0", "stage{s}_block{b}/shortcut_conv", CONV, _STAGE),
        Rule("layer{s}.{b}.downsample.1", "stage{s}_block{b}/shortcut_bn", BATCHNORM, _STAGE),
        Rule("fc", "output", LINEAR),
    ),
    ignored=(r".*\.num_batches_tracked",),
)
