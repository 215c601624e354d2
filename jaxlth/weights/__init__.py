"""Public checkpoint files read into jaxlth networks: ``.safetensors`` files of torchvision/timm
ResNets, timm and Hugging Face ViTs, Hugging Face BERTs (``hf_bert``), or jaxlth's own names.

    flat = read_safetensors("model.safetensors")        # {key: numpy array}
    network, report = to_network(flat, detect(flat), template)
    write_safetensors("out.safetensors", from_network(network, "timm_vit"))

``template`` is one network ``{"params", "batch_stats"}`` of the model to load into (arrays or
``jax.ShapeDtypeStruct``); what the file lacks, and a head of another size, stay as in the
template and are listed in ``report``. See docs/pretrained.md, "Checkpoint files".
"""

from jaxlth.weights.convert import FORMATS, detect, flatten, from_network, to_network
from jaxlth.weights.files import read_safetensors, write_safetensors
from jaxlth.weights.resample import positions as resample_positions

__all__ = [
    "FORMATS",
    "detect",
    "flatten",
    "from_network",
    "read_safetensors",
    "resample_positions",
    "to_network",
    "write_safetensors",
]
