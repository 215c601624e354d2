"""The arms of a one-shot run, with their legend labels."""

from jaxlth.experiments.networks import PRETRAIN
from jaxlth.legend import Arms

DENSE = "dense"
ONE_SHOT = "one_shot"
ARMS = Arms(
    {ONE_SHOT: "one-shot magnitude pruning", DENSE: "dense", PRETRAIN: "pretraining"}, main=ONE_SHOT, hidden=(PRETRAIN,)
)
