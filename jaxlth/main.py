"""Command line: ``python -m jaxlth.main --config configs/NAME.py[:ARG] --workdir DIR [--config.KEY=VALUE]``.

Parses flags and hands over to :func:`jaxlth.experiments.run`. Mistakes a user can fix end the
process with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlth.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/, optionally ':ARG'.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for config.json, results.csv, checkpoints and plots.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])!r}; settings go as --config.KEY=VALUE")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO; --verbosity=0 shows them.
    config = _CONFIG.value
    if config is None:
        fail("--config is required, e.g. --config configs/lenet_fashion_mnist.py")
    from jaxlth import config as config_lib  # noqa: PLC0415  (after flag parsing: fast --help)
    from jaxlth import experiments  # noqa: PLC0415

    try:
        config_lib.validate(config)
        experiments.run(config, _WORKDIR.value)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume from the latest checkpoint")


def fail(message: str) -> None:
    print(f"jaxlth: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
