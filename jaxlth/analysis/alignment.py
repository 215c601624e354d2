"""Aligning network B's hidden units to network A's before interpolating them (Git Re-Basin).

``align(program, net_a, net_b, mode, ...)`` returns B with its units permuted, replicate by
replicate: ``"weights"`` by weight matching, ``"activations"`` by activation matching on the given
unaugmented training images, ``"none"`` unchanged; ``match`` returns each replicate's matching
objective with it (:mod:`jaxlth.analysis.matching`). The function B computes is unchanged (its
permutation symmetries come from :mod:`jaxlth.analysis.permutations`); only the path between
A and B changes. Networks are ``{"params", "batch_stats"}`` with a leading replicate axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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


def align(program, net_a: dict, net_b: dict, mode: str, *args, **kwargs) -> dict:
    """``net_b`` with each replicate's units permuted to match ``net_a``'s (``mode`` in :data:`MODES`):
    :func:`match` without its objectives, the same arguments."""
    return match(program, net_a, net_b, mode, *args, **kwargs)[0]


def match(
    program,
    net_a: dict,
    net_b: dict,
    mode: str,
    symmetry: permutations.Symmetry | None = None,
    images=None,
    seed: int = 0,
    restart_keys=None,
) -> tuple[dict, np.ndarray | None]:
    """``(net_b aligned, objectives)``: ``net_b`` with each replicate's units permuted to match
    ``net_a``'s, and ``(R,)`` float64 the objective each replicate's matching reached (weight
    matching: ``<theta_A, pi(theta_B)>``; activation matching: the summed activation inner products;
    ``None`` for ``"none"``).

    ``images``: stored training images (``(N, ...)``) activation matching runs on; ``seed``: the
    order weight matching visits its groups first (restart 0); ``restart_keys``: ``None`` or
    ``(R, K, 2)`` PRNG keys (or ``(R, K)`` typed keys), replicate ``r`` restarting weight matching
    from ``K`` more orders, one drawn from each ``restart_keys[r, k]``, and keeping the best objective.
    """
    if mode == "none":
        return net_b, None
    if mode not in MODES:
        raise ValueError(f"alignment mode must be one of {', '.join(MODES)}, got {mode!r}")
    symmetry = symmetry or symmetry_of(program, net_a)
    sizes = permutations.sizes(symmetry.spec, *_one(net_a, 0))
    x = program.preprocess(images) if mode == "activations" else None
    aligned, objectives = [], []
    for r in range(jax.tree.leaves(net_a)[0].shape[0]):
        (pa, sa), (pb, sb) = _one(net_a, r), _one(net_b, r)
        if mode == "weights":
            restarts = () if restart_keys is None else [_numpy_seed(k) for k in restart_keys[r]]
            perms, objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=seed, restart_seeds=restarts)
        else:
            perms, objective = matching.activation_matching(symmetry, pa, sa, pb, sb, x)
        params, stats = permutations.permute(symmetry.spec, perms, pb, sb)
        aligned.append({"params": params, "batch_stats": stats})
        objectives.append(objective)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *aligned), np.asarray(objectives, np.float64)


def _numpy_seed(key) -> list[int]:
    """A numpy seed (a list of ints) from a JAX PRNG key's data."""
    return [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]


def _one(network: dict, r: int):
    return jax.tree.map(lambda x: x[r], network["params"]), jax.tree.map(lambda x: x[r], network["batch_stats"])


__all__ = ["MODES", "ENTRIES", "REPAIR", "parse", "align", "match", "symmetry_of"]
