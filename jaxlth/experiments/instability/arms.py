"""The arms of an instability run, with their legend labels."""

from jaxlth.legend import MAIN, Arms

TRUNK = "trunk"  # dense training from initialisation that the copies are spawned from
COPIES = "copies"
BETWEEN_LEVELS = "between_levels"
PERTURB = "perturb"
SEEDS = "seeds"  # dense networks of different seeds, interpolated pairwise
TICKET_VS_REINIT = "ticket_vs_reinit"  # an IMP level's network against its mask's random reinitialisation
INIT_TO_FINAL = "init_to_final"  # a network's start against its trained end (dense, and every IMP level)
RENAMED = {"perturbed": PERTURB}


def spawn_name(step: int) -> str:
    """``4 -> "spawn_0000004"``: the artifacts and checkpoints of copies spawned at ``step``."""
    return f"spawn_{int(step):07d}"  # arm names written before the experiment protocol, and what they are now


ARMS = Arms(
    labels={
        COPIES: "copies",
        BETWEEN_LEVELS: "successive IMP levels",
        PERTURB: "perturbed rewind point",
        SEEDS: "different seeds",
        TICKET_VS_REINIT: "ticket vs. random reinitialisation",
        INIT_TO_FINAL: "start to trained network",
        TRUNK: "trunk",
    },
    main=MAIN,
)
