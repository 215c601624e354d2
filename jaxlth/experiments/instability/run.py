"""The instability analyses, each run when configured, over one shared scaffold."""

from __future__ import annotations

from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.instability import init_to_final, levels, perturb, seeds, spawn, tickets
from jaxlth.experiments.instability.scaffold import Scaffold


def run(ctx: Context) -> None:
    """Runs (or resumes) the configured analyses."""
    scaffold = Scaffold(ctx)
    networks.init_network(ctx)  # artifacts/init, as every run that trains from an initialisation keeps it
    if scaffold.spawn_steps:
        spawn.run(scaffold)
    if scaffold.ins.between_levels:
        levels.run(scaffold)
    perturb.run(scaffold)
    if scaffold.ins.seed_pairs:
        seeds.run(scaffold)
    if scaffold.ins.ticket_vs_reinit:
        tickets.run(scaffold)
    if scaffold.ins.get("init_to_final", False):
        init_to_final.run(scaffold)
