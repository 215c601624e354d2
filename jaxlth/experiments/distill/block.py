"""The ``distill`` config block: its fields with their defaults and their checks (no data read)."""

from __future__ import annotations

import ml_collections

from jaxlth import steps as step_specs
from jaxlth.errors import UserError

METHODS = ("mtt", "dm")
INITS = ("real", "noise")


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.method = "mtt"  # mtt: matching training trajectories (Cazenavette et al. 2022); dm: distribution matching
    c.images_per_class = 10  # the papers' settings: 1, 10, 50
    c.iterations = 1000  # outer iterations (MTT's code: 5000; DM's: 20000)
    c.inner_steps = 20  # MTT: N, student SGD steps on the synthetic set per iteration
    c.expert_epochs = 2  # MTT: M, the expert epochs those N steps must match
    c.max_start_epoch = 10  # MTT: the student starts from an expert epoch t drawn in [0, max_start_epoch)
    c.experts = 5  # MTT: expert trajectories (replicates of the run's training; MTT's code: 100)
    c.expert_steps = "12ep"  # MTT: how long the experts train (whole epochs; each epoch's network is saved)
    c.experts_workdir = ""  # MTT: reuse the experts of this distill run (same model and data) instead of training
    c.lr_images = 100.0  # SGD (momentum 0.5) on the images in the network's input units (normalised)
    c.lr_lr = 0.01  # MTT: SGD (momentum 0.5) on log(lr), the student's learned learning rate
    c.init_lr = 0.01  # the student's learning rate at the start (MTT: lr_teacher); DM: the artifact's lr
    c.learn_labels = False  # MTT: learn soft labels (logits per image) too
    c.lr_labels = 1.0  # MTT with learn_labels: SGD (momentum 0.5) on the label logits
    c.batch_syn = 0  # MTT: synthetic images per student step (0: all of them; must divide their number)
    c.batch_real = 256  # DM: real images of each class per iteration
    c.init = "real"  # real: distinct real training images of each class; noise: standard normal inputs
    c.chunk = 50  # outer iterations per compiled chunk and checkpoint
    c.log_every = 10  # a row of the loss (mean over these iterations) and the learned lr every this many
    c.eval_steps = 300  # at the end: a fresh network trained this many steps on each set, tested (0: none)
    return c


def _positive(value, field: str, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"distill.{field} must be an integer >= {low}, got {value!r}")
    return value


def validate(config) -> None:
    d = config.distill
    if d.method not in METHODS:
        raise UserError(f"distill.method must be one of {', '.join(METHODS)}, got {d.method!r}")
    ipc = d.images_per_class
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise UserError(f"distill.images_per_class must be at least 1 (the papers use 1, 10 and 50), got {ipc!r}")
    for field in ("iterations", "inner_steps", "expert_epochs", "max_start_epoch", "experts", "batch_real"):
        _positive(d[field], field)
    for field in ("chunk", "log_every"):
        _positive(d[field], field)
    _positive(d.batch_syn, "batch_syn", allow_zero=True)
    _positive(d.eval_steps, "eval_steps", allow_zero=True)
    if d.init not in INITS:
        raise UserError(f"distill.init must be one of {', '.join(INITS)}, got {d.init!r}")
    for field in ("lr_images", "init_lr") + (("lr_labels",) if d.learn_labels else ()):
        if not float(d[field]) > 0:
            raise UserError(f"distill.{field} must be positive, got {d[field]!r}")
    if not float(d.lr_lr) >= 0:
        raise UserError(f"distill.lr_lr must be >= 0 (0: the learning rate stays distill.init_lr), got {d.lr_lr!r}")
    if d.method == "dm" and d.learn_labels:
        raise UserError(
            "distill.learn_labels needs distill.method = 'mtt' (DM matches embeddings, it learns no labels)"
        )
    spec = step_specs.parse(d.expert_steps, "distill.expert_steps")
    if spec.iterations or spec.epochs < 1:
        raise UserError(f"distill.expert_steps must be whole epochs such as '50ep', got {d.expert_steps!r}")
    if d.method == "mtt" and spec.epochs < last_epoch(config):
        raise UserError(
            f"distill.expert_steps ({d.expert_steps}) must reach epoch max_start_epoch - 1 + expert_epochs = "
            f"{last_epoch(config)}, the latest an iteration matches"
        )


def last_epoch(config) -> int:
    """The latest expert epoch an MTT iteration reads: ``max_start_epoch - 1 + expert_epochs``."""
    return int(config.distill.max_start_epoch) - 1 + int(config.distill.expert_epochs)


def trained_epochs(config) -> int:
    """The epochs the experts train (``distill.expert_steps``, whole epochs)."""
    return step_specs.parse(config.distill.expert_steps, "distill.expert_steps").epochs
