"""``python -m jaxlth.bench ...``: see :mod:`jaxlth.bench`."""

from jaxlth.bench import main

main()
