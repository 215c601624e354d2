"""A small Vision Transformer on Fashion-MNIST: lottery tickets and stability in a transformer a
CPU can train.

ViT (Dosovitskiy et al. 2021) with 7x7 patches (16 tokens and a class token), width 64, depth 3,
4 heads, MLP ratio 2 (about 110,000 parameters); AdamW (lr 1e-3, weight decay 1e-4), batch 128, a
1-epoch linear warmup and a cosine decay over 6 epochs. Pruned: the attention query, key, value and
output kernels and the MLP kernels (the literature's prunable set); the patch and position
embeddings, the class token, the norms and the head stay dense (``pruning.model_defaults``).
Lottery (``:lottery``): 6 levels of global magnitude pruning of 20% (26% left), rewinding to epoch
1 (transformers, like large conv nets, are unstable at initialisation: Frankle et al. 2020; Chen et
al. 2021 rewind BERT to its pretrained weights instead), random pruning and random reinitialisation
as controls. Instability (``:instability``): 2 copies spawned at initialisation and at the rewind
point.

    python -m jaxlth.main --config configs/vit_fashion_mnist.py --workdir runs/vit
    python -m jaxlth.main --config configs/vit_fashion_mnist.py:lottery --workdir runs/vit_lottery \
        --config.replicates=2
    python -m jaxlth.main --config configs/vit_fashion_mnist.py:instability --workdir runs/vit_instability \
        --config.replicates=2

Any other size by its options, e.g. ViT-Ti with 4x4 patches on 28x28 images:
``--config.model.name=vit_tiny --config.model.options.patch_size=4``.
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "vit"
    c.model.options.patch_size = 7
    c.model.options.width = 64
    c.model.options.depth = 3
    c.model.options.heads = 4
    c.model.options.mlp_ratio = 2
    c.train.optimizer = "adamw"
    c.train.lr = 1e-3
    c.train.weight_decay = 1e-4
    c.train.batch_size = 128
    c.train.steps = "6ep"
    c.train.warmup = "1ep"
    c.train.schedule = "cosine"
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 6
    c.lottery.rewind = "1ep"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit")
    c.instability.spawn_steps = "0it,1ep"
    c.instability.copies = 2
    c.instability.alphas = 30
    return choose(c, arg)
