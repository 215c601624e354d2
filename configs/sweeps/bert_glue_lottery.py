"""BERT tickets on every GLUE task (Chen et al. 2020, Table 2): one IMP run per task, each with the
recipe's 9 levels of 10% of the original weights, rewinding to the pretrained weights, its controls and
2 replicates (the std that "matching" is judged by). Needs the checkpoint and GLUE folders of
docs/text.md; one accelerator-day or more for BERT-base.

    python -m jaxlth.sweep configs/sweeps/bert_glue_lottery.py --workdir runs/bert_lottery
    python -m jaxlth.sweep configs/sweeps/bert_glue_lottery.py --workdir runs/bert_lottery --executor slurm \
        --slurm_partition gpu --slurm_timeout_min 1440

Then ``jaxlth.results.load_many("runs/bert_lottery/*")`` (column ``data.name``), and the transfer
sweep ``configs/sweeps/bert_transfer.py``, whose sources are these runs.
"""

from jaxlth.sweep import grid

CONFIG = "configs/bert_glue.py:lottery"
TASKS = ("sst2", "mrpc", "qqp", "stsb", "cola", "mnli", "qnli", "rte", "wnli")


def get_sweep():
    return grid(**{"data.name": list(TASKS), "data.dir": ["glue"], "replicates": [2]})
