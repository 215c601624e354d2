"""Every random stream a run uses, named in one place.

All randomness derives from two integers of the config: ``seed`` (initialisation) and
``data_seed`` (SGD noise). Replicate ``r`` uses ``PRNGKey(seed + r)`` and ``PRNGKey(data_seed + r)``,
so replicate ``r`` of a run equals replicate 0 of a run with seed ``seed + r``. From those keys:

=====================  ==============================================================================
stream                 key
=====================  ==============================================================================
initialisation         ``fold_in(PRNGKey(seed + r), INIT)``
SGD noise (data key)   ``fold_in(PRNGKey(data_seed + r), DATA)``
data order, epoch e    ``fold_in(fold_in(data_key, ORDER), e)`` (a permutation of the training set)
augmentation, step s   ``fold_in(fold_in(data_key, AUGMENT), s)``
branch at level L      ``fold_in(PRNGKey(seed + r), branch_stream(name, L))`` (its transform);
                       ``... branch_stream(name, L) + 1`` (its fresh initialisation, if any)
instability copy c     data key ``fold_in(data_key_r, COPY + c)``
perturbation group g   noise key ``fold_in(data_key_r, PERTURB + g)`` (g = 0 is unperturbed)
instability subset     ``PRNGKey(EVAL_SUBSET_SEED)``: the fixed order of training examples errors are measured
                       on, activation matching and REPAIR draw from (``eval_subset_order``)
landscape, level L     ``fold_in(PRNGKey(seed + r), LANDSCAPE + L)``: Lanczos start and Hutchinson probes
landscape subset       ``PRNGKey(LANDSCAPE_SUBSET_SEED)``: the training examples the Hessian is taken on
BatchNorm batches      ``PRNGKey(BN_BATCHES_SEED)``: the training batches statistics are recomputed from
synthetic data         ``data.synthetic_seed`` (numpy), see ``jaxlth.data.sources.synthetic``
data subsets           ``data.subset_seed`` (numpy), see ``jaxlth.data.subsets``
score-chosen subsets   ``<spec>.seed`` (numpy; + r for a replicate's random subset), see ``jaxlth.data.selection``
pruning method m       ``fold_in(PRNGKey(seed + r), branch_stream("prune:" + m, L))`` (its random scores; L: the
                       IMP level, 0 at initialisation); round k of its rounds: ``fold_in(that, k)``
ablation a of m        ``fold_in(PRNGKey(seed + r), branch_stream(m + "_" + a, 0))``; fresh init: ``... + 1``
scoring examples       ``fold_in(data_key_r, SCORING_EXAMPLES)``: the class-balanced batches SNIP/GraSP score on
IMP particle p         data key ``fold_in(data_key_r, PARTICLE + p)`` (``lottery.average_copies``)
=====================  ==============================================================================

Changing any number here changes every result: they are part of the exact-reproduction contract.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp

INIT = 0
DATA = 1
ORDER = 0  # folded into a data key
AUGMENT = 1  # folded into a data key
COPY = 1000
PERTURB = 2000
LEVEL_STRIDE = 7919  # a prime: branch streams of different levels never collide for < 7919 branches
EVAL_SUBSET_SEED = 1
LANDSCAPE = 3000  # + level
LANDSCAPE_SUBSET_SEED = 2
BN_BATCHES_SEED = 0
SCORING_EXAMPLES = 4000  # folded into a data key
PARTICLE = 5000  # + p: the data key of particle p of an averaged IMP level


def replicate_keys(seed: int, replicates: int, stream: int) -> jax.Array:
    """``(R, 2)`` keys: replicate ``r`` uses ``fold_in(PRNGKey(seed + r), stream)``."""
    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed + r), stream) for r in range(replicates)])


def branch_stream(name: str, level: int) -> int:
    """The stream of a control branch at ``level``: stable, independent of the order branches are listed."""
    return ((zlib.crc32(name.encode()) & 0x7FFFFFFF) + LEVEL_STRIDE * level) & 0x7FFFFFFF


def copy_keys(data_keys: jax.Array, copies: int, stream: int) -> jax.Array:
    """``(R * copies, 2)``: copy ``c`` of replicate ``r`` gets ``fold_in(data_keys[r], stream + c)``."""
    return jnp.stack([jax.random.fold_in(data_keys[i // copies], stream + i % copies)
                      for i in range(data_keys.shape[0] * copies)])


def method_stream(method: str, level: int = 0) -> int:
    """The stream of pruning method ``method`` scoring at IMP ``level`` (0: at initialisation)."""
    return branch_stream("prune:" + method, level)


def round_key(key: jax.Array, round_index) -> jax.Array:
    """The key of scoring round ``round_index`` of a method whose key is ``key``."""
    return jax.random.fold_in(key, round_index)


def scoring_example_keys(data_keys: jax.Array) -> jax.Array:
    """``(R, 2)``: the keys that choose each replicate's scoring examples."""
    return jax.vmap(lambda k: jax.random.fold_in(k, SCORING_EXAMPLES))(data_keys)


def eval_subset_order(num_examples: int) -> jax.Array:
    """``(num_examples,)`` the fixed order whose first examples are the instability ``train`` split,
    activation matching's and REPAIR's examples."""
    return jax.random.permutation(jax.random.PRNGKey(EVAL_SUBSET_SEED), num_examples)
