"""One pruned network of a run, written as a folder that anyone loads with jax alone.

    run = jaxlth.results.load("runs/lth")
    run.export("exported/lenet_level_10", level=10, replicate=0, sparse=True)

writes into the new folder:

    model.safetensors    the network with its mask applied (pruned weights exactly 0), jaxlth's key names
                         ``params/hidden_0/kernel``, ``batch_stats/...`` (``model.pretrained`` reads it back)
    mask.safetensors     the mask: booleans over the prunable kernels, the same key names (True: kept)
    forward.jax          the forward pass, ``jax.export``-serialized StableHLO for CPU, CUDA, ROCm and TPU:
                         ``(params, batch_stats, inputs) -> logits`` for any batch size, the inputs as the
                         training data holds them (jaxlth's evaluation preprocessing is inside)
    bcoo.safetensors     with ``sparse=True``: each pruned Dense kernel's kept weights as BCOO ``data`` and
    forward_bcoo.jax     ``indices``, and the forward pass multiplying by them (:mod:`jaxlth.export.bcoo`)
    load.py              ``load(folder, sparse=False) -> (variables, forward)``: jax, numpy, safetensors only
    export.json          what it is: the run and network, model, density per layer, inputs, outputs, config
    README.md            the same for a reader

:func:`write` is the core (a model, its spec, one network and its mask); :func:`from_run` picks them
from a saved run (``Run.export``).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np

import jaxlth
from jaxlth import checkpoint, storage, weights
from jaxlth.errors import UserError
from jaxlth.export import bcoo, loader
from jaxlth.training import functions as fn
from jaxlth.training import setup as setup_lib

PyTree = Any
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # forward.jax runs on any of them
FORMAT = "jaxlth-export-1"


def from_run(
    run,
    path: str,
    level: int | None = None,
    arm: str | None = None,
    replicate: int = 0,
    which: str = "final",
    sparse: bool = False,
    **coordinates,
) -> str:
    """Exports one network of ``run`` (a :class:`jaxlth.runs.Run`) to the new folder ``path``: the
    ``which`` (``final`` or ``rewind``) network of ``arm`` (default the main arm) at ``level``
    (default its last finished) of ``replicate``, with that level's mask; ``coordinates`` pick a
    network stacked per replicate (``prune_fraction=0.4``, ``lr=0.05``). Returns ``path``.
    Loads the run's data once, for the model and the input statistics."""
    check_path(path)
    if isinstance(replicate, bool) or not isinstance(replicate, (int, np.integer)):
        raise UserError(f"replicate must be one replicate's number, got {replicate!r}")
    if which not in ("final", "rewind"):
        raise UserError(f"which must be 'final' or 'rewind' (a level's network and its mask), got {which!r}")
    arm = arm or run.default_arm
    level = run.level(level, arm)
    network = run.network(level, int(replicate), which, arm, **coordinates)
    if not checkpoint.artifact_exists(run.layout.level_artifact(arm, level, "mask")):
        raise UserError(f"arm {arm!r} of the {run.experiment} run in {run.workdir} saves no mask to export with")
    mask = run.mask(level, int(replicate), arm, **coordinates)
    setup = setup_lib.build(ml_collections.ConfigDict(run.config))
    source = dict(workdir=run.workdir, experiment=run.experiment, arm=arm, level=level, replicate=int(replicate))
    info = {"source": dict(source, which=which, **coordinates), "config": run.config}
    return write(path, setup.program.model, setup.program.spec, network, mask, input_dtype(setup.dataset), info, sparse)


def check_path(path: str) -> None:
    """Refuses a folder that exists and holds anything, a file, and a remote path (one sentence)."""
    if not storage.is_local(path):
        raise UserError(f"export writes a local folder; write it there and copy it to {path}")
    if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
        raise UserError(f"{path} exists and is not an empty folder; export into a new one")


def input_dtype(dataset) -> np.dtype:
    """The dtype of the inputs as ``dataset`` holds them (a streamed dataset decodes uint8 pixels)."""
    images = getattr(dataset, "train_images", None)
    return np.dtype(images.dtype if images is not None else np.uint8)


def forward_of(model, spec: fn.Spec):
    """``(params, batch_stats, inputs) -> logits``: jaxlth's evaluation of one network on stored inputs
    (:func:`jaxlth.training.functions.preprocess`, then the model in eval mode, in ``spec.dtype``)."""
    computing = fn.computing_in(model, spec.dtype)

    def forward(params: PyTree, batch_stats: PyTree, inputs: jax.Array) -> jax.Array:
        return fn.logits(computing, params, batch_stats, fn.preprocess(inputs, spec))[0]

    return forward


def serialized(function, *args) -> bytes:
    """``function`` exported with ``jax.export`` for :data:`PLATFORMS`: arguments shaped as ``args``, the
    last one (the inputs, a ``jax.ShapeDtypeStruct``) of any leading batch size."""
    (batch,) = jax.export.symbolic_shape("batch")
    *fixed, inputs = args
    specs = [jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree) for tree in fixed]
    polymorphic = jax.ShapeDtypeStruct((batch, *inputs.shape[1:]), inputs.dtype)
    return bytes(jax.export.export(jax.jit(function), platforms=PLATFORMS)(*specs, polymorphic).serialize())


def write(
    path: str,
    model,
    spec: fn.Spec,
    network: PyTree,
    mask: PyTree,
    dtype: np.dtype,
    info: dict | None = None,
    sparse: bool = False,
) -> str:
    """Writes ``network`` (``{"params", "batch_stats"}`` of one replicate) with ``mask`` (booleans over
    its prunable kernels) applied, its forward pass on inputs of ``dtype`` (shape ``spec.image_shape``)
    and, with ``sparse``, its Dense kernels as BCOO, to the new folder ``path`` (see the module's
    docstring); ``info`` goes into ``export.json``. The folder appears whole or not at all."""
    check_path(path)
    flat_mask = {k: np.asarray(v, bool) for k, v in weights.flatten({"params": mask}).items()}
    flat = {k: np.asarray(v) for k, v in weights.flatten(network).items()}
    unfit = [k for k, m in flat_mask.items() if k not in flat or flat[k].shape != m.shape]
    if unfit:
        raise UserError(f"the mask's {unfit[0]} fits no parameter of the network (a mask of another model?)")
    flat.update({k: np.where(m, flat[k], 0).astype(flat[k].dtype) for k, m in flat_mask.items()})
    tree = loader.nest(flat)
    params, batch_stats = tree["params"], tree.get("batch_stats", {})
    forward = forward_of(model, spec)
    inputs = jax.ShapeDtypeStruct((1, *spec.image_shape), dtype)
    shapes = {}
    if sparse:
        shapes = {k: flat[k].shape for k in bcoo.dense_kernels(forward, params, batch_stats, inputs) if k in flat_mask}
        if not shapes:
            raise UserError(f"{type(model).__name__} has no pruned Dense layer to hold as BCOO; export it dense")
    files = {"model.safetensors": flat, "mask.safetensors": flat_mask}
    programs = {"forward.jax": serialized(forward, params, batch_stats, inputs)}
    if sparse:
        parts = {k: bcoo.to_bcoo(flat[k], flat_mask[k]) for k in shapes}
        files["bcoo.safetensors"] = {f"{k}/{n}": a for k, ab in parts.items() for n, a in zip(("data", "indices"), ab)}
        rest = loader.nest({k: v for k, v in flat.items() if k not in shapes and k.startswith("params/")})["params"]
        sparse_forward = bcoo.sparse_forward(forward, shapes, spec.dtype)
        programs["forward_bcoo.jax"] = serialized(sparse_forward, rest, parts, batch_stats, inputs)
    out = jax.eval_shape(forward, params, batch_stats, inputs)
    described = describe(model, spec, flat, flat_mask, dtype, shapes, out)
    described.update(info or {})
    partial = f"{os.path.abspath(path).rstrip(os.sep)}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        for name, tensors in files.items():
            weights.write_safetensors(os.path.join(partial, name), tensors, {"format": FORMAT})
        for name, blob in programs.items():
            with open(os.path.join(partial, name), "wb") as f:
                f.write(blob)
        shutil.copyfile(loader.__file__, os.path.join(partial, "load.py"))
        with open(os.path.join(partial, "export.json"), "w") as f:
            json.dump(described, f, indent=1, default=str)
        with open(os.path.join(partial, "README.md"), "w") as f:
            f.write(readme(described))
        if os.path.isdir(path):
            os.rmdir(path)  # empty (check_path)
        os.replace(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path


def describe(model, spec: fn.Spec, flat: dict, flat_mask: dict, dtype, shapes: dict, out) -> dict:
    """``export.json`` without the run: model, density (total and per prunable kernel), inputs, outputs, files."""
    kept, prunable = sum(int(m.sum()) for m in flat_mask.values()), sum(m.size for m in flat_mask.values())
    layers = {
        k: {"shape": list(m.shape), "kept": int(m.sum()), "density": float(m.mean())} for k, m in flat_mask.items()
    }
    parameters = sum(v.size for k, v in flat.items() if k.startswith("params/"))
    if spec.text is not None:
        preprocessing = "none: int32 tokens (N, 2, T), row 0 WordPiece ids, row 1 token types"
    else:
        preprocessing = (
            f"x / {spec.pixel_scale:g}, then (x - mean) / std per channel (last axis), "
            f"mean {list(spec.mean)}, std {list(spec.std)}; no augmentation"
        )
    files = ["model.safetensors", "mask.safetensors", "forward.jax", "load.py", "export.json", "README.md"]
    return {
        "format": FORMAT,
        "model": {"class": type(model).__name__, "parameters": int(parameters)},
        "density": kept / max(prunable, 1),
        "kept": kept,
        "prunable": int(prunable),
        "layers": layers,
        "input": {"shape": list(spec.image_shape), "dtype": np.dtype(dtype).name, "batch": "any"},
        "preprocessing": f"inside forward: {preprocessing}",
        "output": {"shape": ["N", *out.shape[1:]], "dtype": np.dtype(out.dtype).name, "what": "logits"},
        "compute_dtype": spec.dtype,
        "platforms": list(PLATFORMS),
        "bcoo": {k: list(s) for k, s in shapes.items()},
        "files": files + (["bcoo.safetensors", "forward_bcoo.jax"] if shapes else []),
        "versions": {"jaxlth": jaxlth.__version__, "jax": jax.__version__},
    }


def readme(info: dict) -> str:
    """``README.md`` of an export folder: what it holds and three lines to run it."""
    source = info.get("source", {})
    where = ", ".join(f"{k} {v}" for k, v in source.items() if k != "workdir")
    shape, dtype = tuple(info["input"]["shape"]), info["input"]["dtype"]
    sparse = "\nvariables, forward = load(FOLDER, sparse=True)  # Dense kernels as BCOO" if info["bcoo"] else ""
    origin = f"; {where}" + (f" of the run in {source['workdir']}" if "workdir" in source else "") if where else ""
    return f"""# A pruned network exported by jaxlth

{info["model"]["class"]} ({info["model"]["parameters"]:,} parameters), {100 * info["density"]:.2f}% of its
{info["prunable"]:,} prunable weights kept{origin}.

```python
from load import load  # load.py: jax, numpy, safetensors (and flatbuffers, which jax.export reads with)
variables, forward = load(FOLDER){sparse}
logits = forward(variables, inputs)  # inputs: {dtype} (N, {", ".join(map(str, shape))}), as the data holds them
```

Preprocessing is {info["preprocessing"]}. `model.safetensors` holds the weights with the mask applied
(keys `params/<layer>/kernel`, `batch_stats/...`), `mask.safetensors` the mask (True: kept); `forward.jax`
is the forward pass serialized by `jax.export` (any batch size; {", ".join(info["platforms"])}).
`export.json` says everything else: per-layer densities, the run's config, the versions.
"""
