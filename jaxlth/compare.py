"""Compare runs: ``python -m jaxlth.compare --out DIR LABEL=LOTTERY_WORKDIR ... [--instability LABEL=WORKDIR ...]``.

Prints the final IMP test accuracy of each lottery run per level, side by side, and the error
barrier of each instability run's first spawn step (with ``instability.spawn_from=source_rewind``:
the instability of that lottery run's rewind point), and writes the figures
``compare_accuracy_vs_weights.png`` and ``compare_rewind_barrier.png`` into ``DIR``. E.g. rewind
points pretrained on the full data, a random subset and the easiest examples (Paul et al. 2022)::

    python -m jaxlth.compare --out runs/diet_compare full=runs/lenet_diet_full \\
        random=runs/lenet_diet_random el2n=runs/lenet_diet_el2n \\
        --instability full=runs/lenet_diet_full_lmc --instability el2n=runs/lenet_diet_el2n_lmc
"""

from __future__ import annotations

import argparse
import sys

from jaxlth.errors import UserError


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, workdir = item.partition("=")
        if not sep or not label or not workdir:
            raise UserError(f"{what} {item!r} is not of the form LABEL=WORKDIR")
        if label in out:
            raise UserError(f"{what} label {label!r} is given twice")
        out[label] = workdir
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=WORKDIR of a lottery run")
    parser.add_argument("--instability", action="append", default=[], help="LABEL=WORKDIR of an instability run")
    parser.add_argument("--out", required=True, help="folder for the figures")
    args = parser.parse_args(argv)
    try:
        from jaxlth import plots, results  # noqa: PLC0415 (matplotlib is slow to import)

        lotteries, instabilities = {}, {}
        for label, workdir in _pairs(args.runs, "run").items():
            run = results.load(workdir)
            if run.experiment != "lottery":
                raise UserError(f"{workdir} holds a {run.experiment!r} run; give lottery runs as LABEL=WORKDIR")
            lotteries[label] = run.table
        for label, workdir in _pairs(args.instability, "--instability").items():
            run = results.load(workdir)
            if run.experiment != "instability":
                raise UserError(f"{workdir} holds a {run.experiment!r} run, not an instability run")
            instabilities[label] = run.table
    except UserError as e:
        print(f"jaxlth: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(plots.format_comparison(lotteries, instabilities), flush=True)
    paths = plots.save_comparison_figures(lotteries, args.out, instabilities)
    print("figures: " + ", ".join(paths), flush=True)


if __name__ == "__main__":
    main()
