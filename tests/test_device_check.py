"""``scripts/device_check.sh`` (the measurements on an accelerator) and ``scripts/prepare_device.sh``
without an accelerator: both parse, every command the check runs names a real config, recipe, field
and benchmark option (its dry run lists them), and the summary is a table from the parts' outputs."""

import ast
import importlib.util
import os
import shlex
import subprocess
import sys

import pytest

from jaxlth import config as config_lib
from jaxlth import models
from tests.conftest import ROOT

CHECK = os.path.join(ROOT, "scripts", "device_check.sh")
PREPARE = os.path.join(ROOT, "scripts", "prepare_device.sh")


def summary_module():
    spec = importlib.util.spec_from_file_location("device_summary", os.path.join(ROOT, "scripts", "device_summary.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", [CHECK, PREPARE], ids=os.path.basename)
def test_the_scripts_parse_and_the_device_folder_is_ignored(script):
    proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "/device/" in open(os.path.join(ROOT, ".gitignore")).read().split()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """``DEVICE_CHECK_DRY_RUN=1``: the commands (``commands.txt``), ``parts.tsv`` and ``summary.md``."""
    out = tmp_path_factory.mktemp("device_check")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "DEVICE_CHECK_DRY_RUN": "1"}
    proc = subprocess.run(["bash", CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commands = [shlex.split(line) for line in (out / "commands.txt").read_text().splitlines() if line.strip()]
    parts = [line.split("\t") for line in (out / "parts.tsv").read_text().splitlines()]
    return commands, parts, (out / "summary.md").read_text()


def test_the_dry_run_plans_every_part_within_eight_minutes(dry_run):
    commands, parts, summary = dry_run
    names = [p[0] for p in parts]
    assert names[:5] == [
        "setup",
        "conv_resnet20_float32",
        "conv_resnet20_bfloat16",
        "conv_vgg16_float32",
        "conv_vgg16_bfloat16",
    ]
    assert {"fit", "lenet_bench", "lenet_40ep_r8", "lenet_1ep", "rewinding_instability", "rewinding_lottery"} <= set(
        names
    )
    rewinding = os.path.exists(os.path.join(ROOT, "configs", "rewinding_fashion_mnist.py"))
    for name, _, status, _, budget, _ in parts:
        assert status == "dry" or (status == "skipped" and name.startswith("rewinding") and not rewinding)
    assert sum(int(p[4]) for p in parts) == 470  # the parts' budgets (seconds): 8 minutes with 10 s to spare
    assert len(commands) == sum(p[2] == "dry" for p in parts)
    for name in names:
        assert f"| {name} |" in summary
    assert "## Targets" in summary


def jaxlth_commands(commands, module):
    return [c[c.index("-m") + 2 :] for c in commands if "-m" in c and c[c.index("-m") + 1] == module]


def test_every_main_command_names_a_config_that_validates(dry_run):
    commands, _, _ = dry_run
    found = jaxlth_commands(commands, "jaxlth.main")
    assert any("--fit" in c for c in found) and any("configs/lenet_fashion_mnist.py" in c for c in found)
    for args in found:
        spec = args[args.index("--config") + 1]
        assert os.path.exists(os.path.join(ROOT, spec.partition(":")[0])), spec
        overrides = {}
        for arg in args:
            if arg.startswith("--config."):
                key, _, value = arg[len("--config.") :].partition("=")
                try:
                    overrides[key] = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    overrides[key] = value
        config = config_lib.from_file(os.path.join(ROOT, spec), **overrides)  # validated, nothing run
        assert "--fit" in args or "--workdir" in args
        if "--fit" in args:  # no CIFAR-10 without a network: shapes of CIFAR-10, from the synthetic source
            assert config.data.name == "synthetic" and tuple(config.data.synthetic_image_shape) == (32, 32, 3)


def test_every_benchmark_command_parses_and_names_real_models(dry_run, monkeypatch):
    import jaxlth.bench as bench

    seen = []
    monkeypatch.setattr(bench.conv_speed, "suite", lambda args: seen.append(("conv", args)))
    monkeypatch.setattr(bench, "train_suite", lambda args: seen.append(("train", args)))
    commands, _, _ = dry_run
    found = jaxlth_commands(commands, "jaxlth.bench")
    for args in found:
        bench.main(args)
    conv = [a for suite, a in seen if suite == "conv"]
    assert len(seen) == len(found) and len(conv) == 4
    assert {(a.models, a.dtype) for a in conv} == {
        (m, d) for m in ("resnet20", "vgg16") for d in ("float32", "bfloat16")
    }
    for args in conv:
        assert args.replicates == "1,2,4,8,16"
        for name in args.models.split(","):
            assert name in models.names()


CONV_ROWS = {  # R -> (images/s per replicate, images/s all, epoch s per replicate)
    1: (9000, 9000, 5.56),
    2: (8000, 16000, 6.25),
    4: (7000, 28000, 7.14),
    8: (5000, 40000, 10.00),
    16: (3000, 48000, 16.67),
}
HEADER = (
    "| model | R | step loop | images/s per replicate | images/s all | vs R=1 | CIFAR-10 epoch, s per replicate | "
    "TFLOP/s | % of matmul ceiling | % of peak | step memory | peak memory so far |\n" + "|---|" * 12
)


def conv_output(model, counts, plain=None, ratio=None):
    lines = ["jax 0.11.2 on 1 x gpu (NVIDIA H200)", "", "conv nets on CIFAR-10-shaped data ...", HEADER]
    for r in counts:
        per, every, epoch = CONV_ROWS[r]
        lines.append(
            f"| {model} | {r} | scan | {per:,} | {every:,} | {every / 9000:.2f}x | {epoch:.2f} | 1.000 | 5% | 1.0% | "
            "100 MiB | 2,000 MiB |"
        )
    if plain:
        lines.append(f"| {model} plain Flax + optax loop | 1 | step per call | {plain:,} | | | | | | | | |")
    if ratio:
        lines.append(f"\n{model}: jaxlth / plain loop (R=1) = {ratio:.2f}x (target >= 0.9x)")
    return "\n".join(lines)


def write_sample(out):
    """A run's outputs: some parts ended well, one ran out of time, one failed, one was skipped."""
    logs = {
        "setup": [
            ("setup", "installing into /tmp/site: matfree-0.6.3-py3-none-any.whl\njax 0.11.2 on 1 x gpu (NVIDIA H200)")
        ],
        "conv": [
            ("conv_resnet20_float32", conv_output("resnet20", (1, 2, 4, 8, 16), plain=9500, ratio=0.95)),
            ("conv_resnet20_bfloat16", conv_output("resnet20", (1, 2))),
            (
                "conv_vgg16_float32",
                "Traceback (most recent call last):\n  File ...\nRuntimeError: RESOURCE_EXHAUSTED: out of memory",
            ),
        ],
        "fit": [("fit", "8 replicate(s); the 1 device(s) hold up to 1337 (a network: 1.0 MiB in training)")],
        "lenet": [
            (
                "lenet_40ep_r8",
                "train: 100%|##########| 18720/18720 [00:20<00:00]\n"
                "test accuracy after 18720 steps: 0.8890 ± 0.0040 over 8 replicate(s); results in /tmp/w/results.csv",
            )
        ],
    }
    status = {"conv_resnet20_bfloat16": ("124", "65"), "conv_vgg16_float32": ("1", "55")}
    rows = []
    for group, parts in logs.items():
        with open(os.path.join(out, f"{group}.txt"), "w") as f:
            for name, text in parts:
                f.write(f"=== part {name} (timeout 100 s): python ...\n{text}\n=== part {name}: exit status 0\n")
                rc, timeout = status.get(name, ("0", "100"))
                rows.append([name, group, rc, "12.5", timeout, ""])
    rows.append(["rewinding_instability", "rewinding", "skipped", "0", "0", "configs/x.py is not in this checkout"])
    with open(os.path.join(out, "parts.tsv"), "w") as f:
        f.writelines("\t".join(r) + "\n" for r in rows)


def test_the_summary_is_a_table_of_the_parts_with_the_targets(tmp_path):
    write_sample(tmp_path)
    summary = summary_module()
    assert summary.main([str(tmp_path), "--budget", "470"]) == 1  # a part failed
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# jaxlth on an accelerator")
    assert "jax 0.11.2 on 1 x gpu (NVIDIA H200)" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "| ok |" in rows["setup"] and "matfree" in rows["setup"]
    r20 = rows["conv_resnet20_float32"]
    assert "R=8: 5,000 img/s per replicate, epoch 10.00 s" in r20 and "jaxlth / plain loop 0.95x" in r20
    assert "epoch no, 8 vs 1 yes, plain yes" in r20  # 10 s > 2 s; 40,000 / 9,000 = 4.4x; 0.95x
    assert "timed out after 65 s" in rows["conv_resnet20_bfloat16"] and "R=2:" in rows["conv_resnet20_bfloat16"]
    assert "failed (exit status 1)" in rows["conv_vgg16_float32"] and "RESOURCE_EXHAUSTED" in rows["conv_vgg16_float32"]
    assert "hold up to 1337" in rows["fit"]
    assert (
        "0.8890 ± 0.0040 over 8 replicate(s)" in rows["lenet_40ep_r8"]
        and "12.5 s whole process" in rows["lenet_40ep_r8"]
    )
    assert "skipped: configs/x.py is not in this checkout" in rows["rewinding_instability"]
    # the conv rows side by side, and the targets
    assert "| resnet20 | float32 | 8 | 5,000 | 40,000 | 4.44x | 10.00 |" in text
    assert "| resnet20, plain Flax + optax loop | float32 | 1 | 9,500 |" in text
    assert "| ResNet-20 CIFAR-10 epoch at R = 8, float32: <= 2 s per replicate | 10.00 s | no |" in text
    assert "| ResNet-20, 8 replicates >= 4x the images/s of one, float32 | 4.44x | yes |" in text
    assert "| resnet20 float32: jaxlth >= 0.9x the plain Flax + optax loop (R = 1) | 0.95x | yes |" in text
    assert "| ResNet-20 CIFAR-10 epoch at R = 8, bfloat16: <= 2 s per replicate | - | not measured |" in text
    failed = next(line for line in text.splitlines() if line.startswith("Failed or out of time"))
    assert "conv_resnet20_bfloat16" in failed and "conv_vgg16_float32" in failed and "conv.txt" in failed
    assert "fit" not in failed


def test_the_plain_loop_ratio_comes_from_the_table_when_the_last_line_is_missing(tmp_path):
    summary = summary_module()
    part = summary.Part("conv_resnet20_float32", "conv", "124", 100.0, "100", "", conv_output("resnet20", (1,), 10000))
    conv = summary.parse_conv(part)
    assert conv.ratio == pytest.approx(0.9) and conv.ratio_from_table
    assert summary.Part("x", "g", "0", 1.0, "1", "").ok and not summary.Part("x", "g", "2", 1.0, "1", "").ok


def test_an_empty_folder_gives_a_summary_that_says_so(tmp_path):
    assert summary_module().main([str(tmp_path)]) == 1
    assert "No parts were recorded" in (tmp_path / "summary.md").read_text()
