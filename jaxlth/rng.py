"""Every random stream a run uses: declared as a :class:`Stream`, listed in one table, checked.

All randomness derives from two integers of the config: ``seed`` (initialisation) and
``data_seed`` (SGD noise). Replicate ``r`` uses ``PRNGKey(seed + r)`` and ``PRNGKey(data_seed + r)``,
so replicate ``r`` of a run equals replicate 0 of a run with seed ``seed + r``. A stream is a
number folded into one of those keys (or, for a fixed choice shared by every run, the constant a
key is made from). The core streams are declared here (:data:`CORE`); each experiment declares its
own in its folder (``Experiment.streams``); :func:`check` refuses two streams that could draw the
same key, and :func:`table` lists them all (``docs/design.md``, "Random streams", is checked
against it). Nothing else in jaxlth makes a key from a constant.

Branch and pruning-method streams are hashed from a name (:func:`branch_stream`): stable,
independent of the order branches are listed, far above the declared offsets.

Changing any number here changes every result: they are part of the exact-reproduction contract.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np

# The keys a stream is folded into.
SEED = "PRNGKey(seed + r)"  # the replicate's initialisation seed
DATA_SEED = "PRNGKey(data_seed + r)"  # the replicate's SGD-noise seed
DATA_KEY = "data key"  # fold_in(PRNGKey(data_seed + r), DATA): the replicate's SGD noise
CONSTANT = "constant"  # PRNGKey(offset): a fixed choice, the same for every run and replicate


@dataclasses.dataclass(frozen=True)
class Stream:
    """``fold_in(<parent>, offset + i)`` for ``0 <= i < span`` (``parent == CONSTANT``: ``PRNGKey(offset)``).

    ``name`` says what it draws (one row of :func:`table`); ``index`` what ``i`` counts.
    """

    name: str
    parent: str
    offset: int
    span: int = 1
    index: str = ""

    def at(self, i: int = 0) -> int:
        """The number folded in for index ``i``."""
        if not 0 <= i < self.span:
            raise ValueError(f"the stream {self.name!r} has {self.span} indices, not {i}")
        return self.offset + i

    def key(self, parent_key: jax.Array, i: int = 0) -> jax.Array:
        """``fold_in(parent_key, offset + i)``; a constant stream's key (``parent_key`` unused: ``None``)."""
        if self.parent == CONSTANT:
            return jax.random.PRNGKey(self.offset)
        return jax.random.fold_in(parent_key, self.at(i))

    def describe(self) -> str:
        """The key as a formula, for the table."""
        if self.parent == CONSTANT:
            return f"PRNGKey({self.offset})"
        number = f"{self.offset} + {self.index}" if self.span > 1 else str(self.offset)
        return f"fold_in({self.parent}, {number})"


INIT = Stream("initialisation of replicate r", SEED, 0)
DATA = Stream("SGD noise of replicate r (its data key)", DATA_SEED, 1)
ORDER = Stream("data order of epoch e (a permutation): folded with e", DATA_KEY, 0)
AUGMENT = Stream("augmentation at step s: folded with s", DATA_KEY, 1)
BN_BATCHES = Stream("the training batches BatchNorm statistics are recomputed from (a fixed order)", CONSTANT, 0)
EVAL_SUBSET = Stream(
    "the fixed order of training examples paths are measured on (instability's train split), "
    "activation matching and REPAIR draw from",
    CONSTANT,
    1,
)
DROPOUT = Stream("dropout at step s (text models): folded with s", DATA_KEY, 2)
MLM_MASKS = Stream("the tokens a masked-language-model step predicts at step s: folded with s", DATA_KEY, 3)
MLM_EVAL = Stream("the fixed tokens masked-language-model evaluation predicts: folded with the example", CONSTANT, 3)
CORE = (INIT, DATA, ORDER, AUGMENT, BN_BATCHES, EVAL_SUBSET, DROPOUT, MLM_MASKS, MLM_EVAL)

LEVEL_STRIDE = 7919  # a prime: branch streams of different levels never collide for < 7919 branches
HASHED_FLOOR = 1 << 20  # declared offsets stay below this; hashed streams (branch_stream) of real names lie above


def check(streams) -> None:
    """Raises ``ValueError`` when two distinct streams fold overlapping numbers into the same key,
    or a declared offset reaches the hashed streams."""
    unique = list(dict.fromkeys(streams))
    for i, a in enumerate(unique):
        if a.offset + a.span > HASHED_FLOOR:
            raise ValueError(f"the stream {a.name!r} reaches {a.offset + a.span}, into the hashed branch streams")
        for b in unique[i + 1 :]:
            if a.parent == b.parent and a.offset < b.offset + b.span and b.offset < a.offset + a.span:
                raise ValueError(
                    f"the random streams {a.name!r} and {b.name!r} overlap: both fold "
                    f"{max(a.offset, b.offset)} into {a.parent}"
                )


def table(streams) -> list[tuple[str, str]]:
    """``(name, key formula)`` of each stream, in the order given."""
    return [(s.name, s.describe()) for s in dict.fromkeys(streams)]


def replicate_keys(seed: int, replicates: int, stream: int | Stream) -> jax.Array:
    """``(R, 2)`` keys: replicate ``r`` uses ``fold_in(PRNGKey(seed + r), stream)``.

    One compiled program for every seed and stream (``R`` eager key ops would compile ~5 small programs
    at every start); bitwise the keys of the formula above for every seed ``PRNGKey`` accepts."""
    number = stream.at() if isinstance(stream, Stream) else stream
    seeds = np.arange(seed, seed + replicates, dtype=np.int64)
    dtype = jax.dtypes.canonicalize_dtype(np.int64)
    if replicates and (seeds.min() < np.iinfo(dtype).min or seeds.max() > np.iinfo(dtype).max):
        return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed + r), number) for r in range(replicates)])
    return _replicate_keys(seeds.astype(dtype), np.uint32(number))


@jax.jit
def _replicate_keys(seeds: jax.Array, number: jax.Array) -> jax.Array:
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), number))(seeds)


def branch_stream(name: str, level: int) -> int:
    """The stream of a control branch at ``level``: stable, independent of the order branches are listed."""
    return ((zlib.crc32(name.encode()) & 0x7FFFFFFF) + LEVEL_STRIDE * level) & 0x7FFFFFFF


def copy_keys(data_keys: jax.Array, copies: int, stream: int | Stream) -> jax.Array:
    """``(R * copies, 2)``: copy ``c`` of replicate ``r`` gets ``fold_in(data_keys[r], stream + c)``."""
    offset = stream.offset if isinstance(stream, Stream) else stream
    if isinstance(stream, Stream) and copies > stream.span:
        raise ValueError(f"the stream {stream.name!r} has {stream.span} indices, not {copies}")
    return jnp.stack(
        [jax.random.fold_in(data_keys[r], offset + c) for r in range(data_keys.shape[0]) for c in range(copies)]
    )


def method_stream(method: str, level: int = 0) -> int:
    """The stream of pruning method ``method`` scoring at IMP ``level`` (0: at initialisation)."""
    return branch_stream("prune:" + method, level)


def round_key(key: jax.Array, round_index) -> jax.Array:
    """The key of scoring round ``round_index`` of a method whose key is ``key``."""
    return jax.random.fold_in(key, round_index)


def fixed_order(stream: Stream, num_examples: int) -> jax.Array:
    """``(num_examples,)``: the fixed random order of a constant stream (the same in every run)."""
    if stream.parent != CONSTANT:
        raise ValueError(f"the stream {stream.name!r} is not a constant stream")
    return jax.random.permutation(stream.key(None), num_examples)


def eval_subset_order(num_examples: int) -> jax.Array:
    """``(num_examples,)`` the fixed order whose first examples are the instability ``train`` split,
    activation matching's and REPAIR's examples (:data:`EVAL_SUBSET`)."""
    return fixed_order(EVAL_SUBSET, num_examples)
