"""A workdir belongs to one experiment: the first run writes ``config.json``, later runs must match."""

from __future__ import annotations

import json
import os

import ml_collections

from jaxlth import config as config_lib
from jaxlth.errors import UserError
from jaxlth.results import CONFIG_FILE


def claim(workdir: str, config: ml_collections.ConfigDict) -> bool:
    """Makes ``workdir`` this config's (writing ``config.json``) or checks that it already is.

    Returns True when the workdir already held this experiment (a resume). Raises UserError,
    touching nothing, when it holds another experiment or unrelated files.
    """
    if not workdir:
        raise UserError("--workdir is required: the folder where config.json, results.csv and checkpoints go")
    path = os.path.join(workdir, CONFIG_FILE)
    current = config_lib.to_dict(config)
    if os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path} cannot be read ({e}); this workdir is damaged, use another --workdir") from None
        diffs = config_lib.differences(saved, current)
        if diffs:
            more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
            raise UserError(
                f"workdir {workdir} holds a different experiment ({diffs[0]}{more}); "
                "use another --workdir, or rerun with the config saved in its config.json"
            )
        if saved != current:  # only fields that may grow changed (e.g. lottery.levels): record them
            _write(path, current)
        return True
    if os.path.isdir(workdir) and os.listdir(workdir):
        raise UserError(f"workdir {workdir} is not empty and holds no jaxlth {CONFIG_FILE}; choose a new --workdir")
    os.makedirs(workdir, exist_ok=True)
    _write(path, current)
    return False


def _write(path: str, config: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
