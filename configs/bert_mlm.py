"""BERT tickets on the masked-language-model objective, BERT's own pre-training task: the MLM setting of
Chen et al., *The Lottery Ticket Hypothesis for Pre-trained BERT Networks* (NeurIPS 2020), whose 70%
sparse MLM masks transfer to every GLUE task ("universal" subnetworks).

BERT-base uncased from its Hugging Face checkpoint, its pre-training head (tied to the word
embeddings) kept; WikiText-103 (raw) cut into blocks of 128 tokens ([CLS] block [SEP]); each step
predicts 15% of the tokens (80% replaced by [MASK], 10% by a random token, 10% kept; drawn anew
every step, as Hugging Face's collator); evaluation on the validation split with a fixed draw;
the metric is the masked-token accuracy. Settings of the paper's code: AdamW lr 5e-5, batch 16,
linear decay, 20,000 steps to train a subnetwork (``train.steps``), no weight decay. Lottery: 10% of
the original weights per level, rewinding to the pretrained weights, random pruning, random
re-initialisation and one-shot magnitude pruning as controls (the paper's code prunes every 10,000
steps during its IMP search: ``--config.train.steps=10000it``).

Get the checkpoint and the corpus once, on a machine with a network (docs/text.md):

    hf download google-bert/bert-base-uncased model.safetensors config.json vocab.txt \
        tokenizer_config.json --local-dir pretrained/bert-base-uncased
    python -c "import datasets; datasets.load_dataset('wikitext', 'wikitext-103-raw-v1')"

then train, or find the tickets, and carry the 70% mask to a GLUE task:

    python -m jaxlth.main --config configs/bert_mlm.py --workdir runs/bert_mlm
    python -m jaxlth.main --config configs/bert_mlm.py:lottery --workdir runs/bert_mlm_lottery
    python -m jaxlth.main --config configs/bert_glue.py:sst2,transfer --workdir runs/bert_transfer_sst2 \
        --config.data.dir=glue --config.transfer.sources="('runs/bert_mlm_lottery',)"

Any plain-text corpus: ``--config.data.corpus="" --config.data.dir=DIR`` with ``DIR/train.txt`` and
``DIR/validation.txt``.
"""

import jax

from jaxlth.config import base_config, choose

CHECKPOINT = "pretrained/bert-base-uncased"


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "text"
    c.data.corpus = "wikitext:wikitext-103-raw-v1"
    c.data.max_length = 128
    c.data.mlm_probability = 0.15
    c.model.name = "bert_base"
    c.model.pretrained = CHECKPOINT
    c.model.pretrained_head = "keep"  # the checkpoint's MLM head
    c.train.optimizer = "adamw"
    c.train.lr = 5e-5
    c.train.eps = 1e-8
    c.train.weight_decay = 0.0
    c.train.batch_size = 16
    c.train.steps = "20000it"
    c.train.schedule = "linear"
    c.train.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    c.eval_every = "2000it"
    c.eval_batch_size = 256
    c.checkpoint_every = "2000it"
    c.lottery.levels = 9
    c.lottery.prune_fraction = 0.1
    c.lottery.prune_of = "original"
    c.lottery.rewind = "pretrained"
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit", "magnitude_at_rewind")
    c.lottery.random_prune_scope = "global"
    return choose(c, arg)
