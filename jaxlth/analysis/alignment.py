"""Aligning network B's hidden units to network A's before interpolating them (Git Re-Basin).

``align(program, net_a, net_b, mode, ...)`` returns B with its units permuted, replicate by
replicate: ``"weights"`` by weight matching, ``"activations"`` by activation matching on the given
unaugmented training images, ``"none"`` unchanged. The function B computes is unchanged (its
permutation symmetries come from :mod:`jaxlth.analysis.permutations`); only the path between
A and B changes. Networks are ``{"params", "batch_stats"}`` with a leading replicate axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlth.analysis import matching, permutations
from jaxlth.training import functions as fn

MODES = ("none", "weights", "activations")
REPAIR = "+repair"  # an ``instability.align`` entry ``MODE+repair`` also REPAIRs every interpolated network
ENTRIES = tuple(e for mode in MODES for e in (mode, mode + REPAIR))  # the order tables and figures use


def parse(entry: str) -> tuple[str, bool]:
    """``(mode, repair)`` of an alignment entry: ``"weights"`` -> ``("weights", False)``,
    ``"activations+repair"`` -> ``("activations", True)``."""
    if entry not in ENTRIES:
        raise ValueError(f"alignment must be one of {', '.join(ENTRIES)}, got {entry!r}")
    return entry.removesuffix(REPAIR), entry.endswith(REPAIR)


def symmetry_of(program, network: dict) -> permutations.Symmetry:
    """The permutation symmetries of ``program``'s model, traced on replicate 0 of ``network``."""

    def apply(params, batch_stats, x):
        return fn.logits(program.model, params, batch_stats, x, False)[0]

    one = jax.tree.map(lambda x: x[0], network)
    return permutations.analyze(apply, one["params"], one["batch_stats"], tuple(program.spec.image_shape))


def align(
    program,
    net_a: dict,
    net_b: dict,
    mode: str,
    symmetry: permutations.Symmetry | None = None,
    images=None,
    seed: int = 0,
) -> dict:
    """``net_b`` with each replicate's units permuted to match ``net_a``'s (``mode`` in :data:`MODES`).

    ``images``: stored training images (``(N, ...)``) activation matching runs on; ``seed``: the order
    weight matching visits its groups.
    """
    if mode == "none":
        return net_b
    if mode not in MODES:
        raise ValueError(f"alignment mode must be one of {', '.join(MODES)}, got {mode!r}")
    symmetry = symmetry or symmetry_of(program, net_a)
    sizes = permutations.sizes(symmetry.spec, *_one(net_a, 0))
    x = program.preprocess(images) if mode == "activations" else None
    aligned = []
    for r in range(jax.tree.leaves(net_a)[0].shape[0]):
        (pa, sa), (pb, sb) = _one(net_a, r), _one(net_b, r)
        if mode == "weights":
            perms = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=seed)
        else:
            perms = matching.activation_matching(symmetry, pa, sa, pb, sb, x)
        params, stats = permutations.permute(symmetry.spec, perms, pb, sb)
        aligned.append({"params": params, "batch_stats": stats})
    return jax.tree.map(lambda *xs: jnp.stack(xs), *aligned)


def _one(network: dict, r: int):
    return jax.tree.map(lambda x: x[r], network["params"]), jax.tree.map(lambda x: x[r], network["batch_stats"])


__all__ = ["MODES", "ENTRIES", "REPAIR", "parse", "align", "symmetry_of"]
