"""How many XLA programs a lottery run compiles at each level, and a pruning-at-init run in all
(docs/design.md, "Compilation").

Programs that differ only in values (a level's mask, its rewind network, a branch's keys) are one
compiled program: after level 0, a level compiles only what no level before it ran (level 1: the
pruning program and each branch's transform), and every later level compiles nothing.
"""

import collections
import contextlib

import jax
from jax import monitoring

from jaxlth import experiments
from jaxlth.experiments import lottery as lottery_lib
from jaxlth.experiments.context import Context
from jaxlth.experiments.lottery.run import Lottery
from tests.conftest import tiny_config

# Every XLA program compiled, or loaded from the persistent compilation cache (an eager op on a new
# shape is one too), ends with this event; its ``fun_name`` is the program's name, e.g. "jit(evaluate)".
COMPILED = "/jax/core/compile/backend_compile_duration"

# docs/design.md, "Compilation": the tiny lottery run of this test (2 levels, one branch).
BEFORE_LEVEL_0 = 9  # setup, initialisation and the pretraining to the rewind step on the dense mask (at most)
LEVEL_0 = 0  # the dense training runs the pretraining's programs: one training program for every chunk
LEVEL_1 = ["jit(_transform)", "jit(prune_each)"]  # the pruning program; the branch's transform
LATER_LEVELS: list = []
# The tiny pruning-at-init run (5 methods, 2 densities, 3 ablations): 145 programs when copies were stacked,
# repeated and selected by eager ops (a slice per leaf and copy index) and each method jitted its ablations anew.
PRUNE_AT_INIT = 48


@contextlib.contextmanager
def compiled_programs():
    """Yields a list that collects the name of every XLA program compiled (or loaded from the persistent
    compilation cache) in this process while the block runs, in order."""
    names: list[str] = []

    def listen(event: str, duration: float, **labels) -> None:
        if event == COMPILED:
            names.append(str(labels.get("fun_name", "?")))

    monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listen)


def test_levels_after_the_first_compile_only_what_they_run_first(tmp_path, monkeypatch):
    config = tiny_config("lottery", **{"lottery.levels": 2, "lottery.branches": ("random_prune",)})
    starts: dict = {}  # level -> how many programs had been compiled when it began
    original = Lottery.imp_mask

    def imp_mask(self, level, *args, **kwargs):  # the first thing a level does
        starts[level] = len(compiled)
        return original(self, level, *args, **kwargs)

    monkeypatch.setattr(Lottery, "imp_mask", imp_mask)
    experiments.claim(str(tmp_path), config)
    jax.clear_caches()  # count what this run compiles, not what an earlier test left in memory
    with compiled_programs() as compiled:
        Lottery(Context(config, str(tmp_path), lottery_lib.EXPERIMENT)).run()

    bounds = [0, starts[0], starts[1], starts[2], len(compiled)]
    before, level_0, level_1, level_2 = (compiled[a:b] for a, b in zip(bounds, bounds[1:]))
    assert len(before) <= BEFORE_LEVEL_0, before
    assert len(level_0) <= LEVEL_0, level_0
    assert sorted(level_1) == LEVEL_1, level_1
    assert level_2 == LATER_LEVELS, level_2


def test_pruning_at_init_compiles_copy_layouts_and_ablations_once(tmp_path):
    # Copies are stacked, repeated and selected by one program per tree (the copy a traced index), not by an
    # eager op per leaf and copy; the shuffled and re-initialised ablations are one program each for every method.
    config = tiny_config("prune_at_init")
    jax.clear_caches()
    with compiled_programs() as compiled:
        experiments.run(config, str(tmp_path))
    counts = collections.Counter(compiled)
    layout_ops = ("jit(slice)", "jit(broadcast_in_dim)", "jit(concatenate)")  # what eager copies compiled per leaf
    eager = {name: n for name, n in counts.items() if name in layout_ops}
    assert not eager, eager
    assert counts["jit(_ablate)"] == 2, counts  # shuffle and reinit; invert is the scorer's own program
    assert len(compiled) <= PRUNE_AT_INIT, counts
