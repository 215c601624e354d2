"""The summary of ``scripts/device_check.sh``: ``python scripts/device_summary.py OUT [--budget SECONDS]``.

Reads ``OUT/parts.tsv`` (one line per part: name, log group, exit status or ``skipped``/``dry``,
seconds, timeout, note) and each part's section of ``OUT/<group>.txt`` (from its ``=== part NAME``
line to the next), and writes ``OUT/summary.md``: a table of the parts (status, seconds, key numbers,
target met?), the conv benchmark's rows side by side, the targets of issue 28 with what was measured,
and which parts failed. Prints the summary; exits 1 when a part failed or ran out of time.

The standard library only: it runs even where jaxlth's own dependencies failed to install. The
benchmark tables are read by their column names, not their positions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys

TIMED_OUT = ("124", "137")  # timeout's status for a command it stopped (TERM, then KILL)
EPOCH_TARGET, SPEEDUP_TARGET, PLAIN_TARGET = 2.0, 4.0, 0.9
H100_LENET_SECONDS = 25  # README: the LeNet recipe, 40 epochs, 8 replicates, whole process, one H100


@dataclasses.dataclass
class Part:
    name: str
    group: str
    status: str
    seconds: float
    timeout: str
    note: str
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "0"

    @property
    def failed(self) -> bool:
        return self.status not in ("0", "skipped", "dry")

    def describe(self) -> str:
        if self.ok:
            return "ok"
        if self.status == "dry":
            return "not run (dry run)"
        if self.status == "skipped":
            return f"skipped: {self.note}" if self.note else "skipped"
        if self.status in TIMED_OUT:
            return f"timed out after {self.timeout} s"
        return f"failed (exit status {self.status})"


def read_parts(out: str) -> list[Part]:
    """The parts of ``out/parts.tsv`` with their sections of the group logs."""
    parts, logs = [], {}
    path = os.path.join(out, "parts.tsv")
    if not os.path.exists(path):
        return parts
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 5:
                continue
            name, group, status, seconds, timeout = fields[:5]
            note = fields[5] if len(fields) > 5 else ""
            if group not in logs:
                log = os.path.join(out, f"{group}.txt")
                logs[group] = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
            parts.append(Part(name, group, status, float(seconds or 0), timeout, note, section(logs[group], name)))
    return parts


def section(log: str, name: str) -> str:
    """The lines of ``log`` from ``=== part NAME`` to the next part's header."""
    out, inside = [], False
    for line in log.splitlines():
        if line.startswith("=== part "):
            header = line[len("=== part ") :]
            starts = header.split(" ", 1)[0].rstrip(":")
            if inside and starts != name:
                break
            inside = starts == name
            continue
        if inside:
            out.append(line)
    return "\n".join(out)


def tables(text: str) -> list[list[dict]]:
    """Every markdown table of ``text``: a list of rows, each a dict from column name to cell."""
    found, header = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            found.append([])
        elif all(set(c) <= set("-: ") for c in cells):
            continue
        else:
            found[-1].append(dict(zip(header, cells)))
    return found


def number(cell: str | None) -> float | None:
    """``"1,234.5"``, ``"5.27x"``, ``"0.021 s"``: the first number in ``cell`` (None when there is none)."""
    match = re.search(r"-?\d[\d,]*\.?\d*", cell or "")
    return float(match.group().replace(",", "")) if match else None


def column(row: dict, *words: str) -> str | None:
    """The cell of the first column whose name holds every one of ``words``."""
    for name, cell in row.items():
        if all(w in name for w in words):
            return cell
    return None


def last_line(text: str, pattern: str = "") -> str:
    """The last line of ``text`` matching ``pattern`` (a regex; any non-empty line when empty), progress
    bars left out."""
    for line in reversed(text.splitlines()):
        line = line.split("\r")[-1].strip()
        if line and not re.search(r"\d+%\|", line) and re.search(pattern, line):
            return line
    return ""


def error_line(text: str) -> str:
    """What a failed command said last: jaxlth's one sentence, or the last line of a traceback."""
    return last_line(text, r"(jaxlth: error|Error|error:|Exception|Killed|assert)") or last_line(text)


@dataclasses.dataclass
class Conv:
    """One ``python -m jaxlth.bench conv`` part: its rows by R, the plain loop, its ratio."""

    model: str
    dtype: str
    rows: dict  # R -> {"per": images/s per replicate, "all": images/s, "epoch": s per replicate}
    plain: float | None
    ratio: float | None
    ratio_from_table: bool

    def speedup(self, r: int) -> float | None:
        if r in self.rows and 1 in self.rows and self.rows[1]["all"]:
            return self.rows[r]["all"] / self.rows[1]["all"]
        return None


def parse_conv(part: Part) -> Conv | None:
    match = re.match(r"conv_([a-z0-9]+)_([a-z0-9]+)$", part.name)
    if not match:
        return None
    model, dtype = match.groups()
    rows, plain = {}, None
    for table in tables(part.text):
        for row in table:
            name = row.get("model", "")
            if "plain" in name and model in name:
                plain = number(column(row, "images/s per replicate"))
            elif name == model and number(row.get("R")) is not None:
                per, every = number(column(row, "images/s per replicate")), number(column(row, "images/s all"))
                r = int(number(row["R"]))
                rows[r] = {
                    "per": per,
                    "all": every if every is not None else (per or 0) * r,
                    "epoch": number(column(row, "epoch")),
                }
    ratio_match = re.search(rf"{model}: jaxlth / plain loop \(R=1\) = ([\d.]+)x", part.text)
    ratio, from_table = (float(ratio_match.group(1)), False) if ratio_match else (None, False)
    if ratio is None and plain and 1 in rows and rows[1]["per"]:
        ratio, from_table = rows[1]["per"] / plain, True
    return Conv(model, dtype, rows, plain, ratio, from_table)


def verdict(value: float | None, target: float, at_most: bool = False) -> str:
    if value is None:
        return "not measured"
    met = value <= target if at_most else value >= target
    return "yes" if met else "no"


def conv_keys(conv: Conv) -> tuple[str, str]:
    """Key numbers and targets of a conv part."""
    keys = []
    for r in sorted(conv.rows):
        row = conv.rows[r]
        epoch = f", epoch {row['epoch']:.2f} s" if row["epoch"] is not None else ""
        keys.append(f"R={r}: {row['per']:,.0f} img/s per replicate{epoch}")
    if conv.ratio is not None:
        keys.append(f"jaxlth / plain loop {conv.ratio:.2f}x" + (" (from the table)" if conv.ratio_from_table else ""))
    met = [f"plain {verdict(conv.ratio, PLAIN_TARGET)}"]
    if conv.model == "resnet20":
        epoch = conv.rows.get(8, {}).get("epoch")
        met = [
            f"epoch {verdict(epoch, EPOCH_TARGET, at_most=True)}",
            f"8 vs 1 {verdict(conv.speedup(8), SPEEDUP_TARGET)}",
            *met,
        ]
    return "; ".join(keys) or "no rows", ", ".join(met)


def keys_of(part: Part) -> tuple[str, str]:
    """``(key numbers, target met?)`` of any part."""
    if part.status == "dry":
        return "", ""
    conv = parse_conv(part)
    if conv is not None:
        keys, met = conv_keys(conv)
    elif part.name == "setup":
        keys = "; ".join(x for x in (last_line(part.text, r"^jax .* on "), last_line(part.text, r"^installing")) if x)
        met = ""
    elif part.name == "fit":
        keys, met = last_line(part.text, r"replicate\(s\); the"), ""
    elif part.name == "lenet_bench":
        keys, met = lenet_bench_keys(part.text), ""
    elif part.name.startswith("lenet_") and part.ok:
        accuracy = last_line(part.text, r"^test accuracy after")
        keys = f"{part.seconds:.1f} s whole process" + (f"; {accuracy}" if accuracy else "")
        if part.name == "lenet_40ep_r8":
            keys += f" (README, one H100: {H100_LENET_SECONDS} s)"
        met = ""
    else:
        keys, met = last_line(part.text), ""
    if part.failed and part.status not in TIMED_OUT:
        keys = "; ".join(x for x in (keys, error_line(part.text)) if x)
    return keys, met


def lenet_bench_keys(text: str) -> str:
    keys = []
    for table in tables(text):
        for row in table:
            if row.get("measurement", "").startswith("dense training"):
                keys.append(f"dense {row.get('value', '')}")
            elif row.get("measurement", "").startswith("masked"):
                keys.append(f"masked / dense {row.get('value', '')}")
            elif "replicates vmapped" in row and row["replicates vmapped"] in ("8", "32"):
                keys.append(f"R={row['replicates vmapped']}: {column(row, 'vs 1') or '?'} the examples/s of one")
    return "; ".join(keys)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary(out: str, budget: float | None = None) -> tuple[str, bool]:
    """The text of ``summary.md`` and whether every part ran to its end."""
    parts = read_parts(out)
    lines = ["# jaxlth on an accelerator (scripts/device_check.sh)", ""]
    setup = next((p for p in parts if p.name == "setup"), None)
    device = last_line(setup.text, r"^jax .* on ") if setup else ""
    total = sum(p.seconds for p in parts)
    lines.append(
        (f"{device}. " if device else "")
        + f"{len(parts)} parts in {total:.0f} s"
        + (f" (budget {budget:.0f} s)" if budget else "")
        + "; each part's output is in its group's log (setup.txt, conv.txt, fit.txt, lenet.txt, rewinding.txt)."
    )
    lines += ["", "| part | status | seconds | key numbers | target met? |", "|---|---|---|---|---|"]
    for p in parts:
        keys, met = keys_of(p)
        lines.append(f"| {p.name} | {cell(p.describe())} | {p.seconds:.1f} | {cell(keys)} | {cell(met)} |")

    convs = [c for c in (parse_conv(p) for p in parts) if c is not None and c.rows]
    if convs:
        lines += [
            "",
            "## Conv nets: `python -m jaxlth.bench conv` (CIFAR-10-shaped data, batch 128)",
            "",
            "| model | dtype | R | images/s per replicate | images/s all | vs R=1 | CIFAR-10 epoch, s per replicate |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in convs:
            for r in sorted(c.rows):
                row, speedup = c.rows[r], c.speedup(r)
                epoch = f"{row['epoch']:.2f}" if row["epoch"] is not None else ""
                lines.append(
                    f"| {c.model} | {c.dtype} | {r} | {row['per']:,.0f} | {row['all']:,.0f} | "
                    f"{f'{speedup:.2f}x' if speedup is not None else ''} | {epoch} |"
                )
            if c.plain:
                lines.append(f"| {c.model}, plain Flax + optax loop | {c.dtype} | 1 | {c.plain:,.0f} | | | |")

    lines += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    by_name = {c.model + "_" + c.dtype: c for c in (parse_conv(p) for p in parts) if c is not None}
    for dtype in ("float32", "bfloat16"):
        c = by_name.get(f"resnet20_{dtype}")
        epoch = c.rows.get(8, {}).get("epoch") if c else None
        speedup = c.speedup(8) if c else None
        lines.append(
            f"| ResNet-20 CIFAR-10 epoch at R = 8, {dtype}: <= {EPOCH_TARGET:g} s per replicate | "
            f"{f'{epoch:.2f} s' if epoch is not None else '-'} | {verdict(epoch, EPOCH_TARGET, at_most=True)} |"
        )
        lines.append(
            f"| ResNet-20, 8 replicates >= {SPEEDUP_TARGET:g}x the images/s of one, {dtype} | "
            f"{f'{speedup:.2f}x' if speedup is not None else '-'} | {verdict(speedup, SPEEDUP_TARGET)} |"
        )
    for c in by_name.values():
        lines.append(
            f"| {c.model} {c.dtype}: jaxlth >= {PLAIN_TARGET:g}x the plain Flax + optax loop (R = 1) | "
            f"{f'{c.ratio:.2f}x' if c.ratio is not None else '-'} | {verdict(c.ratio, PLAIN_TARGET)} |"
        )

    failed = [p for p in parts if p.failed]
    lines.append("")
    if failed:
        lines.append(
            "Failed or out of time: " + ", ".join(f"{p.name} ({p.describe()}, see {p.group}.txt)" for p in failed) + "."
        )
    elif not parts:
        lines.append("No parts were recorded (no parts.tsv).")
    elif all(p.status in ("dry", "skipped") for p in parts):
        lines.append("A dry run: nothing was run.")
    else:
        lines.append("Every part that ran ended normally.")
    skipped = [p for p in parts if p.status == "skipped"]
    if skipped:
        lines.append("Skipped: " + ", ".join(f"{p.name} ({p.note or 'skipped'})" for p in skipped) + ".")
    return "\n".join(lines) + "\n", bool(parts) and not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the folder device_check.sh wrote (its $OUT)")
    parser.add_argument("--budget", type=float, default=None, help="the whole check's budget in seconds")
    args = parser.parse_args(argv)
    text, ok = summary(args.out, args.budget)
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
