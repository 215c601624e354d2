"""jaxlth: the lottery ticket hypothesis as pure, vmapped JAX functions."""

__version__ = "0.1.0"
