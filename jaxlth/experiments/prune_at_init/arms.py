"""The arms of a pruning-at-initialisation run: one per method and ablation (``<method>[_<ablation>]``),
and the references copied from lottery runs (``imp``, ``lr_rewind``, ``finetune``)."""

from jaxlth.experiments.networks import PRETRAIN
from jaxlth.legend import Arms

REFERENCES = ("imp", "lr_rewind", "finetune")
METHOD_LABELS = {
    "imp": "IMP, weight rewinding",
    "lr_rewind": "IMP, learning-rate rewinding",
    "finetune": "IMP, fine-tuning",
    "random": "random",
    "uniform": "random, uniform",
    "erk": "random, ERK",
    "magnitude": "magnitude",
    "snip": "SNIP",
    "grasp": "GraSP",
    "synflow": "SynFlow",
}
ARMS = Arms({**METHOD_LABELS, PRETRAIN: "pretraining"}, hidden=(PRETRAIN,))
