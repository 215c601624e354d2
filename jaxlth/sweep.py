"""Sweeps across jobs: ``python -m jaxlth.sweep SWEEP_FILE --workdir DIR [--executor local|slurm]``.

A sweep file is a small Python file: ``CONFIG`` (a recipe, ``"configs/NAME.py:EXPERIMENT"``) and
``get_sweep()`` returning a list of overrides (``{"lottery.rewind": "500it", ...}``; :func:`grid`
builds their product). Without a file, ``--config RECIPE --grid FIELD=V1,V2 ...`` sweeps a grid; with one,
``--grid`` crosses the file's runs with its grid (``SWEEP_FILE --grid seed=0,1``: every run for both seeds).
Every run gets its own workdir ``DIR/NNN_field=value_...`` and a manifest ``DIR/sweep.json``;
``jaxlth.results.load_many("DIR/*")`` stacks their tables with the swept fields as columns.

Executors: ``local`` runs the runs one after another in this process; ``slurm`` submits one job
per run through submitit (``--slurm_partition``, ``--slurm_timeout_min``, ``--slurm_gpus``,
``--slurm_cpus``), requeued on preemption or timeout (a run resumes from its checkpoints); and
``submitit_local`` runs the same jobs as local subprocesses (what the tests use). Finished runs
(``finished.json`` matching their config) are skipped; every run's config is validated before the
first one starts, so a bad sweep writes nothing.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import itertools
import json
import os
import re
import sys
from typing import Any, Sequence

from jaxlth import config as config_lib
from jaxlth import experiments
from jaxlth.errors import UserError

EXECUTORS = ("local", "slurm", "submitit_local")
MANIFEST = "sweep.json"


def grid(**fields: Sequence[Any]) -> list[dict]:
    """Every combination of the fields' values: ``grid(**{"a.b": [1, 2], "c": ["x"]})`` ->
    ``[{"a.b": 1, "c": "x"}, {"a.b": 2, "c": "x"}]`` (the last field varies fastest)."""
    names = list(fields)
    return [dict(zip(names, values)) for values in itertools.product(*(fields[n] for n in names))]


@dataclasses.dataclass(frozen=True)
class Planned:
    """One run of a sweep: its name, workdir and overrides of the recipe ``config``."""

    name: str
    workdir: str
    config: str
    overrides: dict


def run_name(index: int, overrides: dict) -> str:
    """``3, {"lottery.rewind": "500it"} -> "003_rewind=500it"`` (file-system safe, readable)."""
    parts = [f"{key.split('.')[-1]}={value}" for key, value in overrides.items()]
    text = re.sub(r"[^A-Za-z0-9=.,_+-]+", "", "_".join(parts))[:120]
    return f"{index:03d}_{text}" if text else f"{index:03d}"


def load_sweep_file(path: str) -> tuple[str, list[dict]]:
    """``(CONFIG, get_sweep())`` of a sweep file; one sentence for each way it can be wrong."""
    if not os.path.isfile(path):
        raise UserError(f"the sweep file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"jaxlth_sweep_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 (a user's file: one sentence, whatever it does wrong)
        raise UserError(f"the sweep file {path} fails when imported: {type(e).__name__}: {e}") from None
    config = getattr(module, "CONFIG", None)
    if not isinstance(config, str) or not callable(getattr(module, "get_sweep", None)):
        raise UserError(
            f"the sweep file {path} must define CONFIG (a recipe such as "
            "'configs/lenet_fashion_mnist.py:lottery') and get_sweep() (a list of overrides)"
        )
    overrides = module.get_sweep()
    if not isinstance(overrides, (list, tuple)) or not all(isinstance(o, dict) for o in overrides) or not overrides:
        raise UserError(f"get_sweep() of {path} must return a non-empty list of dicts of overrides")
    return config, [dict(o) for o in overrides]


def crossed(overrides: Sequence[dict], extra: Sequence[dict]) -> list[dict]:
    """Every run of ``overrides`` with every run of ``extra`` (a sweep file's runs times ``--grid``);
    a field set by both is refused (one sentence)."""
    both = sorted({f for o in overrides for f in o} & {f for e in extra for f in e})
    if both:
        raise UserError(f"--grid sets {', '.join(both)}, which the sweep file already sweeps")
    return [{**o, **e} for o in overrides for e in extra]


def parse_grid(items: Sequence[str]) -> list[dict]:
    """``["train.lr=0.1,0.05", "seed=0,1"]`` -> the grid of those values (literals where they parse)."""
    fields = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise UserError(f"--grid {item!r} must look like FIELD=VALUE1,VALUE2")
        fields[name] = [_literal(v) for v in _split(values)]
    return grid(**fields)


def plan(config: str, overrides: list[dict], directory: str) -> list[Planned]:
    """The runs of a sweep, every config built and validated first (nothing is written)."""
    runs, names = [], set()
    for i, changes in enumerate(overrides):
        try:
            config_lib.from_file(config, **changes)
        except UserError as e:
            raise UserError(f"sweep run {i} ({changes}): {e}") from None
        name = run_name(i, changes)
        if name in names:
            raise UserError(f"sweep runs {i} and another have the same name {name}; make their overrides differ")
        names.add(name)
        runs.append(Planned(name, os.path.join(directory, name), config, changes))
    return runs


def write_manifest(directory: str, runs: list[Planned]) -> None:
    """``DIR/sweep.json``: the recipe and every run's name and overrides."""
    os.makedirs(directory, exist_ok=True)
    manifest = {"runs": [dataclasses.asdict(r) for r in runs]}
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, os.path.join(directory, MANIFEST))


def pending(runs: list[Planned]) -> list[Planned]:
    """The runs that have not finished with their config."""
    return [r for r in runs if not experiments.finished(r.workdir, config_lib.from_file(r.config, **r.overrides))]


def run_one(run: Planned) -> str:
    """Runs (or resumes) one planned run in this process; returns its workdir."""
    experiments.run(config_lib.from_file(run.config, **run.overrides), run.workdir)
    return run.workdir


class _Job:
    """One run as a submitit job: requeued (and so resumed from its checkpoints) when preempted
    or timed out."""

    def __init__(self, run: Planned):
        self.run = run

    def __call__(self) -> str:
        return run_one(self.run)

    def checkpoint(self, *args, **kwargs):
        import submitit  # imported only for SLURM jobs

        return submitit.helpers.DelayedSubmission(_Job(self.run))


def submit(runs: list[Planned], directory: str, executor: str, slurm: dict | None = None) -> list:
    """Submits each run as one submitit job (``slurm`` or ``submitit_local``); returns the jobs."""
    import submitit  # imported only for SLURM jobs

    folder = os.path.join(directory, "submitit", "%j")
    if executor == "slurm":
        pool = submitit.AutoExecutor(folder=folder, cluster="slurm")
        slurm = slurm or {}
        params = {
            "timeout_min": int(slurm.get("timeout_min", 24 * 60)),
            "slurm_signal_delay_s": 120,
            "cpus_per_task": int(slurm.get("cpus", 8)),
            "gpus_per_node": int(slurm.get("gpus", 1)),
        }
        if slurm.get("partition"):
            params["slurm_partition"] = slurm["partition"]
        pool.update_parameters(**params)
    else:
        pool = submitit.LocalExecutor(folder=folder)
        pool.update_parameters(timeout_min=int((slurm or {}).get("timeout_min", 60)))
    return [pool.submit(_Job(run)) for run in runs]


def _split(values: str) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_file", nargs="?", help="a sweep file (CONFIG and get_sweep())")
    parser.add_argument("--workdir", required=True, help="the sweep's folder: one workdir per run inside")
    parser.add_argument("--config", help="a recipe to sweep with --grid instead of a sweep file")
    parser.add_argument("--grid", action="append", default=[], help="FIELD=V1,V2 (repeat for a product)")
    parser.add_argument("--executor", default="local", choices=EXECUTORS)
    parser.add_argument("--dry_run", action="store_true", help="list the runs and whether they are finished")
    parser.add_argument("--slurm_partition", default="")
    parser.add_argument("--slurm_timeout_min", type=int, default=24 * 60)
    parser.add_argument("--slurm_gpus", type=int, default=1)
    parser.add_argument("--slurm_cpus", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        if (args.sweep_file is None) == (args.config is None):
            raise UserError("give either a sweep file or --config RECIPE with --grid FIELD=V1,V2")
        if args.sweep_file:
            config, overrides = load_sweep_file(args.sweep_file)
            overrides = crossed(overrides, parse_grid(args.grid)) if args.grid else overrides
        else:
            config, overrides = args.config, parse_grid(args.grid) if args.grid else [{}]
        runs = plan(config, overrides, args.workdir)
        todo = pending(runs)
        print(
            f"sweep of {len(runs)} runs of {config} in {args.workdir}: {len(runs) - len(todo)} finished, "
            f"{len(todo)} to run",
            flush=True,
        )
        if args.dry_run:
            for run in runs:
                print(f"  {'to run  ' if run in todo else 'finished'}  {run.name}  {run.overrides}")
            return 0
        write_manifest(args.workdir, runs)
        experiments.enable_compilation_cache()
        if args.executor == "local":
            for run in todo:
                print(f"== {run.name}", flush=True)
                run_one(run)
        else:
            slurm = {
                "partition": args.slurm_partition,
                "timeout_min": args.slurm_timeout_min,
                "gpus": args.slurm_gpus,
                "cpus": args.slurm_cpus,
            }
            jobs = submit(todo, args.workdir, args.executor, slurm)
            for run, job in zip(todo, jobs):
                print(f"submitted {run.name}: job {job.job_id}", flush=True)
            if args.executor == "submitit_local":
                for run, job in zip(todo, jobs):
                    try:
                        job.result()
                    except Exception as e:  # noqa: BLE001 (submitit re-raises the job's error as text)
                        lines = [line for line in str(e).splitlines() if line.strip()]
                        raise UserError(
                            f"run {run.name} failed: {lines[-1] if lines else type(e).__name__}; "
                            f"its log is in {os.path.join(args.workdir, 'submitit')}"
                        ) from None
    except UserError as e:
        print(f"jaxlth: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
