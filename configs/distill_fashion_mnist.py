"""Dataset distillation of Fashion-MNIST (``:distill``): 10 synthetic images per class, for LeNet-300-100.

Matching training trajectories (MTT; Cazenavette et al., CVPR 2022) as its code runs it
(github.com/GeorgeCazenavette/mtt-distillation, ``buffer.py`` and ``distill.py``): experts trained by SGD
without momentum at lr 0.01 (``lr_teacher``) with batch 256, their networks saved every epoch; the synthetic
images start as real training images of their class; the student's learning rate starts at ``lr_teacher``
and is learned; images and learning rate are optimised by SGD with momentum 0.5; the start epoch is drawn
in ``[0, max_start_epoch)``. The paper's own settings are for CIFAR-10/100, Tiny ImageNet and ImageNet
subsets, not for (Fashion-)MNIST; its README's CIFAR-100 example at 1 image per class: 20 synthetic steps,
3 expert epochs, max start epoch 20, lr of images 1000 (ZCA-whitened), lr of the learning rate 1e-5;
100 experts of 50 epochs; 5,000 iterations. What this recipe runs, sized for a CPU:

* 10 images per class (the papers' 1, 10, 50: ``--config.distill.images_per_class=1``);
* 5 experts of 12 epochs (the paper: 100 of 50), max start epoch 10, 2 expert epochs, 20 student steps on
  all 100 images, 500 iterations (the paper: 5,000);
* lr of images 100 in normalised input units (no ZCA here), lr of ``log(lr)`` 0.01 (the student's rate is
  ``exp(log_lr)``; MTT's 1e-5 on the rate itself is ~0.1 on ``log(lr)`` at lr 0.01:
  :mod:`jaxlth.distillation.outer`).

    python -m jaxlth.main --config configs/distill_fashion_mnist.py:distill --workdir runs/distill_lenet \
        --config.replicates=2

Distribution matching (DM; Zhao & Bilen, WACV 2023), the cheaper method: no experts, one randomly
initialised network per iteration, 256 real images of each class (its code's ``batch_real``), images by SGD
with momentum 0.5 (its code's lr 1.0 is for ConvNet with instance norm; LeNet's penultimate features are
larger, so 0.1 here), 20,000 iterations in its code, 2,000 here:

    python -m jaxlth.main --config configs/distill_fashion_mnist.py:distill --workdir runs/distill_lenet_dm \
        --config.replicates=2 --config.distill.method=dm --config.distill.lr_images=0.1 \
        --config.distill.iterations=2000

A small ConvNet: the distillation papers' ConvNet-3 (``model.name = "convnet"``: 3x3 conv, instance norm,
ReLU, average pool, three times), here at width 32 (their 128). Its convolutions run as matrix products of
patches on a CPU, where XLA's own run ~30x slower inside the student's loop (jax-ml/jax#12868; an MTT
iteration of 20 steps took 51 s with them, 5.9 s with patches; ``python -m jaxlth.bench distill --models
convnet``). ``configs/distilled/fashion_mnist_convnet.py:distill`` distils it, sized for a CPU:

    python -m jaxlth.main --config configs/distilled/fashion_mnist_convnet.py:distill --workdir runs/distill_convnet

(XLA's convolutions in jaxlth's Conv-2 are as slow in that loop: one Conv-2 MTT iteration of 5 student steps
did not compile and run within 15 minutes here; distil Conv-2 with DM on a CPU.)

Train on a distilled set with ``data.name = "distilled"`` and ``data.distilled_workdir``; the
plain run (no argument) trains the experts' settings on the real data:

    python -m jaxlth.main --config configs/distill_fashion_mnist.py --workdir runs/distill_teacher

and IMP with the experts' training on the real data (15 levels of 20%, rewinding to initialisation);
``configs/distilled/fashion_mnist.py`` runs IMP on a distilled set and judges its masks on the real data:

    python -m jaxlth.main --config configs/distill_fashion_mnist.py:lottery --workdir runs/distill_teacher_imp
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "lenet_300_100"
    c.train.optimizer = "sgd"
    c.train.lr = 0.01  # MTT's lr_teacher: the experts' SGD, no momentum
    c.train.momentum = 0.0
    c.train.batch_size = 256  # MTT's batch_train for the experts
    c.train.steps = "12ep"
    c.train.schedule = "constant"
    c.pruning.layers_to_ignore = ("output",)
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 15
    c.lottery.rewind = "0it"
    d = c.distill
    d.method = "mtt"
    d.images_per_class = 10
    d.iterations = 500
    d.inner_steps = 20
    d.expert_epochs = 2
    d.max_start_epoch = 10
    d.experts = 5
    d.expert_steps = "12ep"
    d.lr_images = 100.0
    d.lr_lr = 0.01
    d.init_lr = 0.01
    d.batch_syn = 0
    d.init = "real"
    d.chunk = 50
    d.log_every = 10
    d.eval_steps = 300
    return choose(c, arg)
