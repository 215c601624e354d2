"""A distill run's synthetic set as a training set (``data.name = "distilled"``).

A finished distill run in workdir ``W`` (``data.distilled_workdir``) saved the artifact
``W/artifacts/distilled`` = ``{"images": float32 (R, N, *image_shape), "labels": int32 (R, N) classes or
float32 (R, N, K) label logits, "lr": float32 (R,)}``: R independent synthetic sets of N images, in
the units of the real dataset's stored training images (Fashion-MNIST's 0..255 as float32), and the
real dataset is the one ``W/config.json``'s ``data`` block names. A run on distilled data trains on
set ``data.distilled_replicate`` (the same set for each of its replicates) and takes everything else
from the real dataset, read by the ordinary reader: the test split, image shape, classes,
normalisation statistics and augmentation. Label logits become soft targets ``softmax(logits)``
(float32 ``(N, K)``), which the ``classify`` objective trains on with the soft cross-entropy. The
learned ``lr`` is not used: the run's ``train.lr`` is.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import numpy as np

from jaxlth import arrays_file, storage
from jaxlth.data.dataset import Dataset
from jaxlth.data.sources import DISTILLED
from jaxlth.errors import UserError
from jaxlth.layout import ARRAYS_FILE, ARTIFACT_FILES, CONFIG_FILE, Layout

NAME = DISTILLED  # data.name
ARTIFACT = "distilled"  # the distill run's artifact
# data fields the distill run's own data block decides (the shape and classes its images were made for)
FIXED = {"classes": (), "task": "classes", "pad_to": 0}
# data fields that only change the real training split, which a distilled set replaces
TRAIN_ONLY = {"subsample_fraction": 1.0, "random_labels_fraction": 0.0}


def workdir(data_cfg) -> str:
    """``data.distilled_workdir``; refuses an empty one."""
    folder = data_cfg.get("distilled_workdir", "") or ""
    if not isinstance(folder, str) or not folder:
        raise UserError(
            "data.name='distilled' trains on a distill run's synthetic set: name that run's workdir in "
            "data.distilled_workdir"
        )
    return folder


def replicate(data_cfg) -> int:
    """``data.distilled_replicate``: which of the distill run's R synthetic sets (0-based)."""
    r = data_cfg.get("distilled_replicate", 0)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise UserError(f"data.distilled_replicate must be a set's index 0, 1, ..., got {r!r}")
    return int(r)


def artifact_path(folder: str) -> str:
    """Where the distill run in ``folder`` saved its synthetic sets."""
    return Layout(folder).artifact(ARTIFACT)


def real_config(data_cfg) -> dict:
    """The ``data`` block the distill run of ``data.distilled_workdir`` read its real dataset with (its
    ``config.json``), with the fields that only change the real training split at their defaults."""
    folder = workdir(data_cfg)
    path = os.path.join(folder, CONFIG_FILE)
    if not storage.exists(path):
        raise UserError(f"data.distilled_workdir {folder} holds no jaxlth run (no {CONFIG_FILE})")
    data = json.loads(storage.read_text(path)).get("data")
    if not isinstance(data, dict):
        raise UserError(f"data.distilled_workdir {folder}: its {CONFIG_FILE} has no data block")
    if data.get("name") == NAME:
        raise UserError(
            f"data.distilled_workdir {folder} was itself trained on distilled data; name the run that distilled "
            "from the real dataset"
        )
    return {**data, **TRAIN_ONLY}


def check(data_cfg) -> None:
    """Raises UserError (one sentence) unless ``data_cfg`` can train on a finished distill run's set;
    reads the distill run's ``config.json`` and looks for its artifact, but no data."""
    for field, plain in FIXED.items():
        value = data_cfg.get(field, plain)
        if (tuple(value) if isinstance(value, list) else value) != plain:
            raise UserError(
                f"data.{field} is the distill run's choice for distilled data (set in its own config); leave it "
                f"at {plain!r}"
            )
    replicate(data_cfg)
    real_config(data_cfg)
    folder = workdir(data_cfg)
    if not any(storage.exists(os.path.join(artifact_path(folder), name)) for name in ARTIFACT_FILES):
        raise UserError(
            f"data.distilled_workdir {folder} holds no finished {ARTIFACT!r} artifact (its run has not finished)"
        )


def read(folder: str) -> dict:
    """The artifact ``{"images", "labels", "lr"}`` of the distill run in ``folder``, as numpy arrays.

    Read from its file (:mod:`jaxlth.arrays_file`), or with Orbax for an artifact of earlier versions:
    :mod:`jaxlth.checkpoint` (which saved it) sits a layer above the data.
    """
    path = storage.absolute(artifact_path(folder))
    if storage.exists(os.path.join(path, ARRAYS_FILE)):
        try:
            tree = arrays_file.read_tree(os.path.join(path, ARRAYS_FILE))
        except UserError as e:
            raise UserError(f"could not read the {ARTIFACT!r} artifact of {folder}: {e}") from None
        return {key: np.asarray(value) for key, value in tree.items()}
    import orbax.checkpoint as ocp  # (Orbax only for distilled data of earlier versions)

    checkpointer = ocp.StandardCheckpointer()
    try:
        tree = checkpointer.restore(path)
    except Exception as e:  # noqa: BLE001 - any failure to read is the user's file
        raise UserError(f"could not read the {ARTIFACT!r} artifact of {folder}: {type(e).__name__}: {e}") from None
    finally:
        checkpointer.close()
    return {key: np.asarray(value) for key, value in tree.items()}


def soft_targets(label_logits: np.ndarray) -> np.ndarray:
    """float32 ``(N, K)``: ``softmax(label_logits)`` over the classes (the last axis)."""
    return np.asarray(jax.nn.softmax(jax.numpy.asarray(label_logits, np.float32), axis=-1))


def training_split(real: Dataset, arrays: dict, r: int, folder: str) -> Dataset:
    """``real`` with its training split replaced by synthetic set ``r`` of ``arrays`` (the artifact).

    Raises:
      UserError: ``r`` out of range, or an artifact that does not fit ``real`` (shape, classes, values).
    """
    images, labels = np.asarray(arrays["images"]), np.asarray(arrays["labels"])
    sets, n = images.shape[:2] if images.ndim >= 2 else (0, 0)
    where = f"the {ARTIFACT!r} artifact of {folder}"
    if not r < sets:
        raise UserError(f"data.distilled_replicate={r}, but {where} holds {sets} synthetic set(s) (0 to {sets - 1})")
    if images.shape[2:] != real.image_shape:
        raise UserError(f"{where} holds images of shape {images.shape[2:]}, and {real.name} has {real.image_shape}")
    soft = labels.ndim == 3
    if labels.shape != (sets, n, *((real.num_classes,) if soft else ())):
        raise UserError(
            f"{where} holds labels of shape {labels.shape} for {sets} x {n} images of {real.num_classes} classes"
        )
    x, y = images[r].astype(np.float32), labels[r]
    if not np.isfinite(x).all() or (soft and not np.isfinite(y).all()):
        raise UserError(f"{where} holds non-finite values in set {r}")
    if not soft and (y.min() < 0 or y.max() >= real.num_classes):
        raise UserError(f"{where} holds labels outside the {real.num_classes} classes of {real.name}")
    kind = "soft labels" if soft else "class labels"
    return real.replace(
        train_images=x,
        train_labels=soft_targets(y) if soft else y.astype(np.int32),
        source=f"distilled set {r} of {sets} ({n} images, {kind}) from {folder}; test: {real.source}",
    )


def load(data_cfg, load_real: Callable[[dict], Dataset]) -> Dataset:
    """The distilled dataset ``data_cfg`` names; ``load_real`` reads the real one from its data block
    (:func:`jaxlth.data.load_dataset`: padded and its task posed as the distill run's was). The fields
    are checked by :func:`check` (``jaxlth.data.check``) first."""
    folder = workdir(data_cfg)
    real = load_real(real_config(data_cfg))
    return training_split(real, read(folder), replicate(data_cfg), folder)
