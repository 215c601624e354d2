"""Config fields that were renamed: their old dotted names, and configs read in today's names.

A recipe, a command line, a ``from_file`` override or an old workdir's ``config.json`` may still use
an old name; it is read as the new one, with a one-line notice (saved configs silently).
:mod:`jaxlth.fields` re-exports these names.
"""

from __future__ import annotations

import json
import sys

import ml_collections

# Old dotted names of fields that moved, and their names now.
RENAMED = {"lottery.layers_to_ignore": "pruning.layers_to_ignore"}


def renamed(dotted: str) -> str:
    """The name of the field ``dotted`` today (itself when it was never renamed)."""
    return RENAMED.get(dotted, dotted)


def notice_renamed(old: str) -> None:
    print(f"jaxlth: {old} is now {RENAMED[old]}; read as {RENAMED[old]}", file=sys.stderr, flush=True)


def migrate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with the renamed fields a recipe set under their old names moved to their new
    names (one notice each on stderr)."""
    for old, new in RENAMED.items():
        block, _, leaf = old.partition(".")
        if block in config and isinstance(config[block], ml_collections.ConfigDict) and leaf in config[block]:
            value = config[block][leaf]
            with config[block].unlocked():
                del config[block][leaf]
            new_block, _, new_leaf = new.partition(".")
            config[new_block][new_leaf] = value
            notice_renamed(old)
    return config


def migrate_saved(saved: dict) -> dict:
    """A saved config (``config.json`` as a dict) in today's field names (silently: reading)."""
    out = json.loads(json.dumps(saved))
    for old, new in RENAMED.items():
        block, _, leaf = old.partition(".")
        if isinstance(out.get(block), dict) and leaf in out[block]:
            new_block, _, new_leaf = new.partition(".")
            out.setdefault(new_block, {})[new_leaf] = out[block].pop(leaf)
    return out
