"""A saved run, read-only: its config, its rows, and the networks and masks of its arms and levels.

:class:`Run` reads what every experiment writes the same way (``config.json``, ``results.csv``,
``artifacts/<arm>/level_LL/{mask,start,final}``, ``init``, ``rewind``); an experiment whose runs
hold more (per-example scores, spawned copies, a stack of prune fractions) declares a subclass as
its ``reader`` and ``jaxlth.results.load`` returns that. Everything comes back as plain Python,
pandas and numpy objects.
"""

from __future__ import annotations

import ast
import io
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxlth import checkpoint, fields, records, storage
from jaxlth.errors import UserError
from jaxlth.layout import CONFIG_FILE, Layout, level_name
from jaxlth.legend import MAIN
from jaxlth.nested import apply_mask, leading, map_tree
from jaxlth.training import copies as copies_lib
from jaxlth.training import hyper

if TYPE_CHECKING:  # pandas is imported when a table is read: a config is checked without it
    import pandas as pd

COLUMNS = records.CORE_COLUMNS  # every row has these; each experiment adds its own (Experiment.columns)
PyTree = Any
SELECTION = ("arm", "level", "which", "replicate")  # what DIR:key=value,... may select, beside the stacked coordinates


def split_selection(spec: str, field: str) -> tuple[str, dict]:
    """``"runs/a:level=3,arm=imp"`` -> ``("runs/a", {"level": 3, "arm": "imp"})``: a workdir and the
    networks chosen in it (numbers as numbers). A path with no ``:key=value`` tail comes back alone
    (``gs://`` paths keep their colon)."""
    head, sep, tail = spec.rpartition(":")
    if not sep or "=" not in tail or "/" in tail:
        return spec, {}
    chosen = {}
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise UserError(f"{field} {spec}: {item!r} is not of the form key=value (e.g. {head}:level=0)")
        try:
            chosen[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            chosen[key.strip()] = value.strip()
    return head, chosen


def read_config(workdir: str) -> dict:
    """The saved config of the run in ``workdir``, in today's field names (UserError when there is none)."""
    path = Layout(workdir).config_file
    if not storage.exists(path):
        raise UserError(f"{workdir} holds no jaxlth run (no {CONFIG_FILE})")
    try:
        return fields.migrate_saved(json.loads(storage.read_text(path)))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} cannot be read ({e}); this workdir is damaged") from None


class Run:
    """A finished or running experiment in a workdir, read-only.

    ``default_arm``: the arm read when a method is given none (the experiment's declaration says
    which). Subclasses add readers and may override :attr:`stacked` (coordinates of several networks
    saved per replicate) and :meth:`upgrade` (tables written by an older jaxlth).
    """

    def __init__(self, workdir: str, default_arm: str = MAIN):
        self.workdir = workdir
        self.layout = Layout(workdir)
        self.config: dict = read_config(workdir)
        self.default_arm = default_arm

    @property
    def experiment(self) -> str:
        return self.config["experiment"]

    @property
    def stacked(self) -> dict[str, tuple]:
        """``{coordinate: values}`` of networks its artifacts stack per replicate beyond the replicates
        (e.g. a prune-fraction sweep's fractions); ``{}`` when each artifact holds the ``R`` replicates."""
        return {}

    def upgrade(self, table: pd.DataFrame) -> pd.DataFrame:
        """A table written by an older jaxlth in today's terms (unchanged here)."""
        return table

    @property
    def table(self) -> pd.DataFrame:
        """All measurements as a tidy DataFrame (empty with the right columns before the first)."""
        import pandas as pd

        path = self.layout.results_file
        if not storage.exists(path):
            return pd.DataFrame(columns=list(COLUMNS))
        text, cut = records.complete_text(path)
        if cut:
            print(f"jaxlth: {path} ends in a line cut short by a crash; that line is ignored", file=sys.stderr)
        return self.upgrade(pd.read_csv(io.StringIO(text)))

    def levels(self, arm: str | None = None) -> list[int]:
        """The levels of ``arm`` whose training has finished (their final network is saved)."""
        base = self.layout.arm_dir(arm or self.default_arm)
        if not storage.isdir(base):
            return []
        finished = [n for n in storage.listdir(base) if checkpoint.artifact_exists(os.path.join(base, n, "final"))]
        return sorted(int(n.removeprefix("level_")) for n in finished if n.startswith("level_"))

    def level(self, level: int | None, arm: str) -> int:
        """``level`` if ``arm`` finished it (``None``: its last finished level), else UserError."""
        done = self.levels(arm)
        if level is None:
            if not done:
                raise UserError(f"{self.workdir} has no finished level of arm {arm!r} yet")
            return done[-1]
        if level not in done:
            raise UserError(f"level {level} of arm {arm!r} is not finished in {self.workdir}; finished: {done}")
        return level

    @property
    def grid(self) -> hyper.Grid:
        """The settings of a hyper-parameter sweep (``train.lr``, ... as tuples; one empty setting without one)."""
        return hyper.grid(self.config.get("train", {}))

    def of_setting(self, tree: PyTree, **values) -> PyTree:
        """The block of ``tree`` (a stack of every setting, setting-major) of the one setting ``values``
        names (e.g. ``lr=0.05``, :meth:`jaxlth.training.hyper.Grid.find`); ``tree`` itself without a sweep."""
        h = self.grid.find(**values)
        size = leading(tree) // self.grid.size
        return tree if not self.grid.fields else map_tree(tree, lambda x: np.asarray(x)[h * size : (h + 1) * size])

    def rows(self, **columns) -> pd.DataFrame:
        """The rows of :attr:`table` whose ``columns`` hold the values given (numbers to 1e-9), e.g.
        ``run.rows(lr=0.05, arm="imp")``."""
        table = self.table
        for column, value in columns.items():
            if column not in table:
                raise UserError(f"the results table of {self.workdir} has no column {column!r}")
            table = table[[hyper.same(v, value) for v in table[column]]]
        return table

    def select(self, tree: PyTree, replicate: int | None, **coordinates) -> PyTree:
        """``tree``'s networks of ``replicate`` (all: ``None``) and of the stacked ``coordinates``
        (e.g. ``prune_fraction=0.4``; a coordinate not given keeps all its networks). In a
        hyper-parameter sweep the setting comes first (``lr=0.05``, :meth:`of_setting`); without one
        only the whole stack can be read."""
        values = {k: coordinates.pop(k) for k in list(coordinates) if k in hyper.FIELDS}
        if self.grid.fields and (values or replicate is not None or any(v is not None for v in coordinates.values())):
            tree = self.of_setting(tree, **values)
        elif values:
            self.of_setting(tree, **values)  # refuses: this run sweeps nothing
        elif self.grid.fields:
            return tree
        replicates = self.config["replicates"]
        if replicate is not None and not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        stacked = self.stacked
        unknown = [k for k, v in coordinates.items() if v is not None and k not in stacked]
        if unknown:
            raise UserError(
                f"a {self.experiment!r} run stacks no {unknown[0]}; its networks are selected by "
                f"replicate{''.join(', ' + k for k in stacked)}"
            )
        count = int(np.prod([len(v) for v in stacked.values()])) if stacked else 1
        if count == 1 and all(v is None for v in coordinates.values()):
            return tree if replicate is None else map_tree(tree, lambda x: np.asarray(x)[replicate])
        copy = None
        for name, values in stacked.items():  # one stacked coordinate (a sweep) today
            wanted = coordinates.get(name)
            if wanted is not None:
                matches = [i for i, v in enumerate(values) if abs(float(v) - float(wanted)) < 1e-9]
                if not matches:
                    raise UserError(f"{name} {wanted} is not one of this run's {tuple(values)}")
                copy = matches[0]
        if leading(tree) == replicates and count > 1:  # shared by every stacked network (init, rewind point)
            tree = map_tree(tree, lambda x: np.repeat(np.asarray(x), count, axis=0))
        rows = copies_lib.positions(replicates, count, replicate, copy)
        pick = rows[0] if replicate is not None and copy is not None else rows
        return map_tree(tree, lambda x: np.asarray(x)[pick])

    def load(self, name: str) -> PyTree:
        """The artifact ``name`` (``init``, ``imp/level_03/mask``, ...) as numpy arrays."""
        return checkpoint.load_artifact(self.layout.artifact(name))

    def network(
        self,
        level: int | None = None,
        replicate: int | None = None,
        which: str = "final",
        arm: str | None = None,
        **coordinates,
    ) -> dict:
        """``{"params", "batch_stats"}`` of a network as numpy arrays (see :meth:`params`)."""
        arm = arm or self.default_arm
        if which == "init":
            network = self.load("init")
        elif which == "final":
            network = self.load(f"{arm}/{level_name(self.level(level, arm))}/final")
        elif which == "rewind":
            if not checkpoint.artifact_exists(self.layout.artifact("rewind")):
                raise UserError(f"a {self.experiment!r} run has no rewind point")
            level = self.level(level, arm)
            start = self.layout.level_artifact(arm, level, "start")
            network = checkpoint.load_artifact(start) if checkpoint.artifact_exists(start) else self.load("rewind")
            network = self.select(network, replicate, **coordinates)
            network["params"] = apply_mask(network["params"], self.mask(level, replicate, arm, **coordinates))
            return network
        else:
            raise UserError(f"which must be 'init', 'rewind' or 'final', got {which!r}")
        return self.select(network, replicate, **coordinates)

    def chosen(self, chosen: dict, field: str) -> tuple[dict, str, int | None]:
        """``(network, description, replicate)`` of what ``DIR:key=value,...`` chose (:func:`split_selection`):
        ``arm`` (default the main arm), ``level`` (default the last finished), ``which`` (``final``,
        ``rewind``, ``init``), the stacked coordinates; the network holds every replicate stacked, and
        ``replicate`` is the one chosen (``None``: none)."""
        allowed = (*SELECTION, *self.stacked, *self.grid.fields)
        unknown = [k for k in chosen if k not in allowed]
        if unknown:
            raise UserError(f"{field} {self.workdir}: cannot choose {unknown[0]!r}; choose by {', '.join(allowed)}")
        arm, which = chosen.get("arm") or self.default_arm, chosen.get("which", "final")
        level, replicate = chosen.get("level"), chosen.get("replicate")
        for name, value in (("level", level), ("replicate", replicate)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UserError(f"{field} {self.workdir}: {name} must be an integer, got {value!r}")
        coordinates = {k: v for k, v in chosen.items() if k in self.stacked or k in self.grid.fields}
        if which == "init":
            network = self.network(None, None, "init", arm, **coordinates)
            what = "the initialisation"
        else:
            level = self.level(level, arm)
            network = self.network(level, None, which, arm, **coordinates)
            what = f"arm {arm}, level {level} ({which})"
        chose = "".join(f", {k}={v}" for k, v in coordinates.items())
        return network, f"{what}{chose} of the {self.experiment} run in {self.workdir}", replicate

    @property
    def pretrained(self) -> dict | None:
        """Where the run's replicates started (``pretrained.json``: the checkpoint, what it held, which of
        its networks each replicate took, which leaves were loaded and which initialised fresh);
        ``None`` for a run that started from a random initialisation."""
        if not self.config.get("model", {}).get("pretrained", ""):
            return None
        path = self.layout.pretrained_file
        if not storage.exists(path):
            return None
        return json.loads(storage.read_text(path))

    def params(
        self,
        level: int | None = None,
        replicate: int | None = None,
        which: str = "final",
        arm: str | None = None,
        **coordinates,
    ) -> PyTree:
        """Parameters as numpy arrays; ``replicate=None`` stacks all replicates on axis 0.

        ``which``: ``"init"`` (step 0), ``"rewind"`` (the network level ``level`` starts from:
        the rewind weights on its mask, or a branch's transformed weights) or ``"final"``.
        ``level`` defaults to the last finished level and is ignored by plain training runs;
        ``arm`` defaults to the experiment's main arm. ``coordinates``: of networks stacked per replicate
        (a prune-fraction sweep stacks ``R * F`` networks; ``prune_fraction=0.4`` picks one fraction's).
        """
        return self.network(level, replicate, which, arm, **coordinates)["params"]

    def batch_stats(
        self,
        level: int | None = None,
        replicate: int | None = None,
        which: str = "final",
        arm: str | None = None,
        **coordinates,
    ) -> PyTree:
        """BatchNorm statistics saved with :meth:`params` (``{}`` for models without BN)."""
        return self.network(level, replicate, which, arm, **coordinates).get("batch_stats", {})

    def mask(
        self, level: int | None = None, replicate: int | None = None, arm: str | None = None, **coordinates
    ) -> PyTree:
        """The mask of a level: booleans over the prunable kernels (all True when dense)."""
        arm = arm or self.default_arm
        if level is None:
            level = self.level(None, arm) if self.levels(arm) else 0
        return self.select(self.load(f"{arm}/{level_name(level)}/mask"), replicate, **coordinates)

    def export(self, path: str, level: int | None = None, arm: str | None = None, replicate: int = 0, **options) -> str:
        """Writes one network with its mask to the new folder ``path``, loadable with jax alone
        (:func:`jaxlth.export.from_run`: ``which``, ``sparse=True`` for BCOO kernels, stacked coordinates)."""
        from jaxlth import export  # (jax.export and the run's data only when asked)

        return export.from_run(self, path, level, arm, replicate, **options)
