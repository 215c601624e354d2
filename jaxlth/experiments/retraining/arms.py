"""The arms of a retraining run: the source's IMP (its rows copied) and the control pruned without
retraining."""

from jaxlth.experiments.lottery.arms import IMP
from jaxlth.legend import Arms

NO_RETRAIN = "no_retrain"  # the trained dense network pruned again and again, never retrained
ARMS = Arms({IMP: "IMP", NO_RETRAIN: "pruned without retraining"}, main=IMP)
