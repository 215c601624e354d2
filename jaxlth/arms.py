"""The arms of every experiment: their names in ``results.csv`` and their labels in figures.

An *arm* is one line of networks trained the same way (IMP, a control branch, the spawned copies
of an instability run, ...). This module is the one place their names and legend labels are
written; experiments, the results API and the figures import them from here.
"""

from __future__ import annotations

# train
MAIN = "main"
# lottery (the control branches' names are those of jaxlth.lottery.branches.BRANCHES)
IMP = "imp"
PRETRAIN = "pretrain"  # dense training 0 -> k that makes the rewind point
PARTICLES = "particles"  # lottery.average_copies: the particles whose average is the level's network
SWA = "swa"  # lottery.average_swa_start: each particle's own average of its iterates (SWAMP)
# instability
TRUNK = "trunk"  # dense training from initialisation that the copies are spawned from
COPIES = "copies"
BETWEEN_LEVELS = "between_levels"
PERTURB = "perturb"
SEEDS = "seeds"  # dense networks of different seeds, interpolated pairwise
TICKET_VS_REINIT = "ticket_vs_reinit"  # an IMP level's network against its mask's random reinitialisation
# one_shot
DENSE = "dense"
ONE_SHOT = "one_shot"
# retraining
NO_RETRAIN = "no_retrain"  # the trained dense network pruned again and again, never retrained

# Legend labels in plotting order (IMP first); arms not listed follow in alphabetical order.
LABELS = {
    IMP: "IMP",
    ONE_SHOT: "one-shot magnitude pruning",
    NO_RETRAIN: "pruned without retraining",
    PARTICLES: "single particles (before averaging)",
    SWA: "single particles' SWA averages",
    "random_prune": "random pruning",
    "random_reinit": "random reinitialisation",
    "shuffle": "shuffled weights",
    "sign_flip": "random signs",
    "reinit_keep_sign": "reinitialised, signs kept",
    "retrain": "retrained (other settings)",
    DENSE: "dense",
    MAIN: "dense",
    COPIES: "copies",
    BETWEEN_LEVELS: "successive IMP levels",
    PERTURB: "perturbed rewind point",
    SEEDS: "different seeds",
    TICKET_VS_REINIT: "ticket vs. random reinitialisation",
    TRUNK: "trunk",
    PRETRAIN: "pretraining",
}

# Arm names written by releases before the experiment protocol, and what they are now.
RENAMED = {"perturbed": PERTURB}


def label(arm: str) -> str:
    """The legend label of ``arm`` (its name when it has none)."""
    return LABELS.get(arm, arm)


def order(arms) -> list[str]:
    """``arms`` sorted: the labelled arms in :data:`LABELS` order, then the rest alphabetically."""
    present = set(arms)
    known = [a for a in LABELS if a in present]
    return known + sorted(present - set(known))
