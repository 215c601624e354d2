"""BERT lottery tickets on GLUE: Chen, Frankle, Chang, Liu, Zhang, Wang, Carbin, *The Lottery Ticket
Hypothesis for Pre-trained BERT Networks* (NeurIPS 2020), with the settings of the paper and its code
(github.com/VITA-Group/BERT-Tickets).

BERT-base uncased from its Hugging Face checkpoint; the GLUE task (sst2, mrpc, qqp, stsb, cola, mnli,
qnli, rte, wnli) is the config argument, alone or with the experiment: ``:cola``, ``:cola,lottery``
(``:lottery`` alone is SST-2). Fine-tuning: AdamW (eps 1e-8, no weight decay), lr 2e-5, no warmup,
linear decay, batch 32, 3 epochs, sequences of 128 tokens, dropout 0.1; the GLUE dev set is the test
split (MNLI: matched, and mismatched as ``test_mismatched``); each task's metric (accuracy; F1 too for
MRPC and QQP; Matthews correlation for CoLA; Pearson and Spearman for STS-B). bfloat16 on an
accelerator. Pruned: every layer's query, key, value, attention-output, intermediate and output
kernels (``pruning.model_defaults``; the paper's code also prunes the pooler, which stays dense here:
``--config.pruning.model_defaults=false --config.pruning.layers_to_ignore="('^output/',)"`` prunes it too).

Lottery: IMP with global magnitude pruning of 10% of the original weights per level
(``lottery.prune_of = "original"``: sparsities 10%, 20%, ..., 90%), each level fine-tuned from the
pretrained weights theta_0 (``lottery.rewind = "pretrained"``; the task head rewinds to its initial
values with them, where the paper's code keeps the head it trained); controls: random pruning to the same global
density, the IMP mask on a random re-initialisation of every weight, and one-shot magnitude pruning of
theta_0 (``magnitude_at_rewind``). "Matching" is within one standard deviation of the dense network's
mean (the paper's Table 2). The paper's IMP search decays the learning rate over 30 epochs while a
round trains 3: add ``--config.train.decay_steps=30ep`` for that.

Get the checkpoint and GLUE once, on a machine with a network (docs/text.md):

    hf download google-bert/bert-base-uncased model.safetensors config.json vocab.txt \
        tokenizer_config.json --local-dir pretrained/bert-base-uncased
    hf download nyu-mll/glue --repo-type dataset --local-dir glue

then fine-tune the dense network, or find its tickets:

    python -m jaxlth.main --config configs/bert_glue.py:sst2 --workdir runs/bert_sst2 --config.data.dir=glue
    python -m jaxlth.main --config configs/bert_glue.py:lottery --workdir runs/bert_sst2_lottery \
        --config.data.dir=glue --config.replicates=2
    python -m jaxlth.main --config configs/bert_glue.py:cola,lottery --workdir runs/bert_cola_lottery \
        --config.data.dir=glue

Transfer (the paper's Sec. 4: another task's mask at 70% sparsity on this task, fresh head): the
``transfer`` experiment with ``transfer.sources`` naming the lottery runs of the source tasks:

    python -m jaxlth.main --config configs/bert_glue.py:rte,transfer --workdir runs/bert_transfer_rte \
        --config.data.dir=glue --config.transfer.sources="('runs/bert_sst2_lottery', 'runs/bert_cola_lottery')"

A smaller BERT of the same code (e.g. the BERT miniatures, google/bert_uncased_L-4_H-256_A-4):
``--config.model.name=bert_mini --config.model.pretrained=pretrained/bert_uncased_L-4_H-256_A-4``.
"""

import jax

from jaxlth.config import base_config, choose

TASKS = ("sst2", "mrpc", "qqp", "stsb", "cola", "mnli", "qnli", "rte", "wnli")
CHECKPOINT = "pretrained/bert-base-uncased"


def _task_and_experiment(arg: str | None) -> tuple[str, str | None]:
    """``"cola,lottery"`` -> ``("cola", "lottery")``; ``"lottery"`` -> ``("sst2", "lottery")``."""
    task, experiment = "sst2", None
    for part in (arg or "").split(","):
        part = part.strip()
        if part in TASKS:
            task = part
        elif part:
            experiment = part
    return task, experiment


def get_config(arg: str | None = None):
    task, arg = _task_and_experiment(arg)  # arg: the experiment
    c = base_config()
    c.data.name = task
    c.data.max_length = 128
    c.model.name = "bert_base"
    c.model.pretrained = CHECKPOINT  # a Hugging Face folder: model.safetensors, config.json, vocab.txt
    c.model.pretrained_head = "fresh"  # the task's head is new (the checkpoint's is the pre-training head)
    c.train.optimizer = "adamw"
    c.train.lr = 2e-5
    c.train.eps = 1e-8
    c.train.weight_decay = 0.0
    c.train.batch_size = 32
    c.train.steps = "3ep"
    c.train.schedule = "linear"
    c.train.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    c.eval_every = "1ep"
    c.eval_batch_size = 256
    c.checkpoint_every = "1ep"
    c.lottery.levels = 9
    c.lottery.prune_fraction = 0.1
    c.lottery.prune_of = "original"
    c.lottery.rewind = "pretrained"
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit", "magnitude_at_rewind")
    c.lottery.random_prune_scope = "global"
    return choose(c, arg)
