"""The transfer table of Chen et al. 2020 (Sec. 4, Table 5): the 70%-sparse IMP mask of every source
task (and of MLM) trained on every GLUE task with a fresh head, beside the target's dense network and
one-shot magnitude pruning of the pretrained weights. Run after ``configs/sweeps/bert_glue_lottery.py``
(the GLUE sources, in ``runs/bert_lottery``) and ``configs/bert_mlm.py:lottery`` (``runs/bert_mlm_lottery``):

    python -m jaxlth.sweep configs/sweeps/bert_transfer.py --workdir runs/bert_transfer

One run per target task, every source's mask in one vmapped program. Then the table, sources x
targets, each cell marked when it is within one std of the target's dense network:

    import glob, jaxlth.plots
    jaxlth.plots.transfer_figure(glob.glob("runs/bert_transfer/*"), "bert_transfer.png")
    print(jaxlth.plots.format_transfer_table(jaxlth.plots.transfer_table(glob.glob("runs/bert_transfer/*"))))
"""

import glob
import json
import os

from jaxlth.sweep import grid

CONFIG = "configs/bert_glue.py:transfer"
TASKS = ("sst2", "mrpc", "qqp", "stsb", "cola", "mnli", "qnli", "rte", "wnli")


def sources() -> tuple[str, ...]:
    """The lottery runs of the GLUE sweep (one per task, named by their task) and the MLM run."""
    runs = sorted(glob.glob("runs/bert_lottery/*"))
    return (*runs, "runs/bert_mlm_lottery")


def names(runs) -> tuple[str, ...]:
    """Each source's arm: the task it was found on (its ``config.json``'s ``data.name``; ``mlm`` for MLM)."""

    def task(run: str) -> str:
        with open(os.path.join(run, "config.json")) as f:
            name = json.load(f)["data"]["name"]
        return "mlm" if name == "text" else name

    return tuple(task(r) if os.path.exists(os.path.join(r, "config.json")) else os.path.basename(r) for r in runs)


def get_sweep():
    runs = sources()
    fixed = {"data.dir": ["glue"], "replicates": [2], "transfer.sources": [runs], "transfer.names": [names(runs)]}
    return grid(**{"data.name": list(TASKS), **fixed})
