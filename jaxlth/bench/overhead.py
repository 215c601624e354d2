"""``python -m jaxlth.bench overhead``: where whole command-line runs spend their time, against their training.

Runs ``python -m jaxlth.main`` as a user does, one whole process each, for the LeNet recipe
(``configs/lenet_fashion_mnist.py``) trained 1 epoch and ``--epochs`` epochs, and one level of its
lottery (``:lottery`` with ``lottery.levels=1`` and no branches: the dense level 0 and the pruned level
1, ``--epochs`` each), every one first with a cold persistent compilation cache (a fresh folder,
``$JAXLTH_COMPILATION_CACHE``) and then warm (the same folder again). For each it prints the wall time
of the whole process (measured here: from the command to its exit), the time from the process's start
to its first training step, the XLA programs compiled and loaded from the cache, and the seconds the run
itself counted (``timing.json``, :mod:`jaxlth.timing`) in compilation, evaluation, checkpointing
(the main thread blocked by saves, loads and closing), row writing, figures and training (the compiled
chunks, compilation excluded), and the whole process over that training. Best (by whole-process time)
of ``--repeats``. ``--data synthetic`` replaces Fashion-MNIST by 512 random images (a quick check).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from jaxlth.errors import UserError
from jaxlth.layout import Layout

RECIPE = os.path.join("configs", "lenet_fashion_mnist.py")
CASES = ("train", "lottery")
DATA = {
    "fashion_mnist": [],
    "synthetic": ["--config.data.name=synthetic", "--config.data.source=synthetic"],
}


def cases(epochs: int, which: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``(name, arguments of jaxlth.main)`` of each run measured."""
    out = []
    if "train" in which:
        for e in sorted({1, epochs}):
            out.append((f"LeNet recipe, {e} epoch{'s' if e > 1 else ''}", [RECIPE, f"--config.train.steps={e}ep"]))
    if "lottery" in which:
        out.append(
            (
                f"lottery levels 0 and 1, {epochs} epochs each",
                [
                    f"{RECIPE}:lottery",
                    "--config.lottery.levels=1",
                    "--config.lottery.branches=()",
                    f"--config.train.steps={epochs}ep",
                ],
            )
        )
    return out


def run_once(arguments: list[str], data: list[str], workdir: str, cache: str) -> dict:
    """One whole process: ``{"wall": seconds, **timing.json}``."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # the cache is ours
    env["JAXLTH_COMPILATION_CACHE"] = cache
    command = [sys.executable, "-m", "jaxlth.main", "--config", arguments[0], "--workdir", workdir]
    command += [*arguments[1:], *data]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise UserError(f"{' '.join(command)} failed (exit {proc.returncode}):\n{tail}")
    with open(Layout(workdir).timing_file) as f:
        return {"wall": wall, **json.load(f)}


def measure(epochs: int, repeats: int, data: str, which: tuple[str, ...]) -> list[tuple[str, str, dict]]:
    """``(case, "cold" | "warm", best measurement)`` of every case."""
    if not os.path.isfile(RECIPE):
        raise UserError(f"{RECIPE} is not here: run the benchmark from the root of the repository")
    rows = []
    scratch = tempfile.mkdtemp(prefix="jaxlth-overhead-")
    try:
        for i, (name, arguments) in enumerate(cases(epochs, which)):
            best: dict[str, dict] = {}
            for r in range(repeats):
                cache = os.path.join(scratch, f"cache_{i}_{r}")  # fresh: cold, then warm
                for kind in ("cold", "warm"):
                    result = run_once(arguments, DATA[data], os.path.join(scratch, f"run_{i}_{r}_{kind}"), cache)
                    if kind not in best or result["wall"] < best[kind]["wall"]:
                        best[kind] = result
            rows += [(name, kind, best[kind]) for kind in ("cold", "warm")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def table(rows: list[tuple[str, str, dict]]) -> str:
    head = (
        "| run | cache | whole process | to first step | programs compiled / loaded | compilation | evaluation "
        "| checkpoints | rows | figures | training | whole / training |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name, kind, m in rows:
        s = m["phases"]
        first = "" if m["start_up"] is None else f"{m['start_up']:.1f} s"
        ratio = f"{m['wall'] / s['training']:.2f}" if s["training"] > 0 else ""
        lines.append(
            f"| {name} | {kind} | {m['wall']:.1f} s | {first} | {m['compiled']} / {m['loaded']} | "
            f"{s['compilation']:.1f} s | {s['evaluation']:.1f} s | {s['checkpoints']:.2f} s | {s['rows']:.2f} s | "
            f"{s['figures']:.1f} s | {s['training']:.1f} s | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[str, str, dict]]:
    """``python -m jaxlth.bench overhead [--epochs 40] [--repeats 1] [--data synthetic] [--cases train,lottery]``."""
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the longer runs (default 40, the recipe's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest is shown (default 1)")
    parser.add_argument("--data", default="fashion_mnist", choices=tuple(DATA), help="default fashion_mnist")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: train, lottery (default both)")
    args = parser.parse_args(argv)
    which = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    if not which or set(which) - set(CASES) or args.epochs < 1 or args.repeats < 1:
        parser.error("--cases takes train and/or lottery; --epochs and --repeats at least 1")
    try:
        rows = measure(args.epochs, args.repeats, args.data, which)
    except UserError as e:
        print(f"jaxlth: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(
        f"\nwhole processes of python -m jaxlth.main --config {RECIPE} ({args.data}), best of {args.repeats}; "
        "the phases as the run counted them (timing.json)"
    )
    print(table(rows))
    return rows
