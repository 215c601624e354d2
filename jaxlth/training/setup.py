"""Everything a run builds from its config before training: data, model, program, device mesh.

Shared by the experiments and by analyses of a saved run (``jaxlth.analysis.for_run``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import traverse_util

from jaxlth import data as data_lib
from jaxlth import models, rng, sharding, subsets
from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training import hyper, optim, text_setup, trainable
from jaxlth.training import pretrained as pretrained_lib
from jaxlth.training.overview import describe  # noqa: F401  (re-exported)
from jaxlth.training.program import DeviceData, Program, Spec, to_device
from jaxlth.training.state import TrainState


@dataclasses.dataclass
class Setup:
    """The built pieces of an experiment; step counts already resolved to iterations."""

    config: ml_collections.ConfigDict
    dataset: data_lib.Dataset
    data: DeviceData
    program: Program
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    checkpoint_every: int
    mesh: object = None  # jax.sharding.Mesh over which the replicate axis is split, or None
    chunk_every: int = 0  # streamed data: chunks end at multiples of this many steps (0: no such limit)
    pretrained: pretrained_lib.Pretrained | None = None  # model.pretrained, read (None: random initialisation)

    @property
    def grid(self) -> hyper.Grid:
        """The settings of a hyper-parameter sweep (one empty setting without one)."""
        return self.program.grid

    @property
    def stacked_replicates(self) -> int:
        """``R * H``: every replicate of every setting of a hyper-parameter sweep (``R`` without one)."""
        return self.config.replicates * self.grid.size

    def replicate_keys(self, seed: int, stream) -> jax.Array:
        """``(R * H, 2)``: replicate ``r``'s key of ``stream`` (:func:`rng.replicate_keys`) for every setting."""
        return self.grid.tile(rng.replicate_keys(seed, self.config.replicates, stream))

    def place(self, tree):
        """Shards a stacked pytree's leading replicate axis over the devices (identity on one)."""
        return sharding.shard_replicas(tree, self.mesh)

    def init_state(self) -> TrainState:
        """The ``R`` replicates at initialisation (seeds ``seed + r`` and ``data_seed + r``); with
        ``model.pretrained``, every leaf the checkpoint gives is its (:mod:`jaxlth.training.pretrained`)."""
        c = self.config
        state = self.program.init(self.replicate_keys(c.seed, rng.INIT), self.data_keys())
        if c.model.get("pretrained", ""):
            if self.pretrained is None:
                raise UserError(f"model.pretrained {c.model.pretrained} was not read for this setup")
            network = pretrained_lib.start(
                {"params": state.params, "batch_stats": state.batch_stats}, self.pretrained, *self._start_rule()
            )
            params, batch_stats = (jax.tree.map(jnp.asarray, network[k]) for k in ("params", "batch_stats"))
            state = TrainState(params, batch_stats, self.program.fresh_opt_state(params), state.data_key)
        return self.place(state)

    def start_plan(self) -> dict | None:
        """What the replicates' start takes from ``model.pretrained`` (:func:`pretrained.plan`), from
        shapes alone; ``None`` without a pretrained start. Raises UserError for a checkpoint of another model."""
        if self.pretrained is None:
            return None
        c = self.config
        fresh = jax.eval_shape(lambda: self.program.init(self.replicate_keys(c.seed, rng.INIT), self.data_keys()))
        network = {"params": fresh.params, "batch_stats": fresh.batch_stats}
        return pretrained_lib.plan(network, self.pretrained, *self._start_rule())

    def _start_rule(self) -> tuple:
        """``(head rule, model name, fresh patterns)`` of ``model.pretrained_*``: :func:`pretrained.plan`'s rule."""
        model = self.config.model
        return model.get("pretrained_head", "auto"), model.name, tuple(model.get("pretrained_fresh", ()))

    @property
    def layers_to_ignore(self) -> tuple[str, ...]:
        """The patterns of the kernels that are never pruned: ``pruning.layers_to_ignore`` and, with
        ``pruning.model_defaults``, the layers the model keeps dense (:func:`jaxlth.models.dense_by_default`)
        and the head of a network started from pretrained weights."""
        return ignored_layers(self.config)

    def data_keys(self) -> jax.Array:
        """``(R * H, 2)``: the keys of the replicates' SGD noise (data order and augmentation)."""
        return self.place(self.replicate_keys(self.config.data_seed, rng.DATA))

    def dense_mask(self, params) -> dict:
        """All-True mask over the prunable kernels (with the replicate axis)."""
        return mask_lib.ones_like(params, self.layers_to_ignore)

    def to_steps(self, spec, field: str) -> int:
        return step_specs.to_steps(spec, self.steps_per_epoch, field)

    def for_examples(self, num_examples: int, keep_iterations: bool = True) -> "Setup":
        """The same data, model and training, compiled for networks that each train on ``num_examples``
        chosen training examples (an :class:`~jaxlth.training.state.ExampleState`'s ``examples``).

        An epoch over the chosen examples is ``num_examples // batch_size`` steps. With
        ``keep_iterations`` the length of training, the schedule and the evaluation intervals stay
        this setup's, in iterations (Paul et al. 2021 keep the number of iterations when they prune
        data); without, ``train.steps``, the schedule's epoch specs and the intervals count epochs
        of the chosen examples.
        """
        batch_size = self.program.spec.batch_size
        if num_examples < batch_size:
            raise UserError(
                f"a subset of {num_examples} training examples is smaller than one batch "
                f"(train.batch_size={batch_size})"
            )
        per_epoch = int(num_examples) // batch_size
        spec = dataclasses.replace(self.program.spec, num_train=int(num_examples), steps_per_epoch=per_epoch)
        if keep_iterations:
            return dataclasses.replace(
                self, program=Program(self.program.model, self.program.tx, self.program.schedule, spec, self.grid)
            )
        c = self.config
        total = step_specs.to_steps(c.train.steps, per_epoch, "train.steps")
        schedule = optim.make_schedule(c.train, per_epoch, total)
        program = Program(self.program.model, self.program.tx, schedule, spec, self.grid)
        return dataclasses.replace(
            self,
            program=program,
            steps_per_epoch=per_epoch,
            total_steps=total,
            eval_every=step_specs.to_steps(c.eval_every, per_epoch, "eval_every"),
            checkpoint_every=step_specs.to_steps(c.checkpoint_every, per_epoch, "checkpoint_every"),
        )

    def with_train(self, **train_overrides) -> "Setup":
        """The same data, model and batching with other ``train`` settings (a new program).

        The batch size and length stay those of this setup: step numbers keep their meaning.
        """
        for field in ("batch_size", "steps"):
            if field in train_overrides:
                raise UserError(f"train.{field} cannot differ between arms of one experiment")
        config = self.config.copy_and_resolve_references()
        for key, value in train_overrides.items():
            if key not in config.train:
                raise UserError(f"train has no field {key!r}; fields: {', '.join(sorted(config.train))}")
            config.train[key] = _like(config.train[key], value, f"train.{key}")
        spec = dataclasses.replace(self.program.spec, dtype=config.train.get("dtype", "float32"))
        program = Program(
            self.program.model,
            optimizer(config.train, self.program.model, spec),
            optim.make_schedule(config.train, self.steps_per_epoch, self.total_steps),
            spec,
            hyper.grid(config.train),
        )
        return dataclasses.replace(self, config=config, program=program)


def ignored_layers(config) -> tuple[str, ...]:
    """The patterns of kernels a run never prunes (:attr:`Setup.layers_to_ignore`)."""
    ignore = tuple(config.pruning.layers_to_ignore)
    if not config.pruning.get("model_defaults", True):
        return ignore
    defaults = models.dense_by_default(config.model.name)
    if config.model.get("pretrained", ""):
        defaults = (*defaults, f"^{pretrained_lib.HEAD}/")
    return ignore + tuple(p for p in defaults if p not in ignore)


def build(config: ml_collections.ConfigDict, dataset: data_lib.Dataset | None = None) -> Setup:
    """Loads the data (unless given) and builds the model, optimizer, schedule and compiled program.

    A streamed dataset (``data_lib.streams``) stays on disk: the program reads it while training.
    ``Setup.pretrained`` is set by the run context (``jaxlth.experiments.pretrained_source`` reads it)."""
    streamed = dataset is None and data_lib.streams(config.data)
    if streamed:
        dataset = data_lib.open_streamed(config.data)
    dataset = dataset if dataset is not None else data_lib.load_dataset(text_setup.data_config(config))
    dataset = dataset if streamed else subsets.apply(dataset, config.data.get("subset"))
    batch_size = config.train.batch_size
    if batch_size > dataset.num_train:
        raise UserError(f"train.batch_size {batch_size} is larger than the training set ({dataset.num_train} examples)")
    steps_per_epoch = dataset.num_train // batch_size
    total_steps = step_specs.to_steps(config.train.steps, steps_per_epoch, "train.steps")
    options = text_setup.model_options(config, dataset)
    model = models.get_model(config.model.name, text_setup.num_outputs(options, dataset), **options)
    spec = Spec(
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        num_train=dataset.num_train,
        image_shape=dataset.image_shape,
        mean=tuple(dataset.mean),
        std=tuple(dataset.std),
        pixel_scale=float(dataset.pixel_scale),
        augmentation=dataset.augmentation,
        eval_batch_size=config.eval_batch_size,
        dtype=config.train.get("dtype", "float32"),
        text=getattr(dataset, "text", None),  # (a streamed dataset is images)
    )
    spec = dataclasses.replace(spec, step_loop=step_loop(model, spec))
    tx, schedule = optimizer(config.train, model, spec), optim.make_schedule(config.train, steps_per_epoch, total_steps)
    grid = hyper.grid(config.train)
    stacked = config.replicates * grid.size
    mesh = sharding.stream_mesh(config.replicates, batch_size) if streamed else sharding.replica_mesh(stacked)
    chunk_every = 0
    if streamed:
        from jaxlth.data.streaming import Stream  # (grain only for streamed data)
        from jaxlth.training.streamed import StreamProgram

        chunk_every = _positive(config.data.stream_chunk_steps, "data.stream_chunk_steps")
        data = Stream(
            dataset,
            batch_size,
            steps_per_epoch,
            config.eval_batch_size,
            threads=_positive(config.data.stream_threads, "data.stream_threads"),
        )
        program = StreamProgram(model, tx, schedule, spec, data, mesh)
    else:
        data, program = sharding.replicate(to_device(dataset), mesh), Program(model, tx, schedule, spec, grid)
    return Setup(
        config=config,
        dataset=dataset,
        data=data,
        mesh=mesh,
        chunk_every=chunk_every,
        program=program,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        eval_every=step_specs.to_steps(config.eval_every, steps_per_epoch, "eval_every"),
        checkpoint_every=step_specs.to_steps(config.checkpoint_every, steps_per_epoch, "checkpoint_every"),
    )


def optimizer(train_cfg, model, spec: Spec):
    """``optim.make_optimizer`` for ``model``'s parameters (``train.trainable`` matched against their shapes)."""
    return optim.make_optimizer(train_cfg, trainable.network_for(train_cfg, functools.partial(fn.init, model, spec)))


def step_loop(model, spec: Spec) -> str:
    """``"replicates"`` for convolutional models on a CPU, else ``"scan"``: XLA:CPU runs convolutions
    inside a loop ~30x more slowly (jax-ml/jax#12868, measured here: a Conv-2 step 9.9 s in ``lax.scan``,
    0.32 s alone), and vmapped ones as grouped convolutions ~8x more slowly per replicate at R = 2, so
    there a chunk is a host loop over one compiled step run for one replicate at a time. A model is
    convolutional when a ``kernel`` has 3 or more axes (a ViT's 3-D class token and position embedding
    are no convolution). Fixed by model and platform, so a resumed run runs the programs it ran before."""
    if jax.default_backend() != "cpu":
        return "scan"
    params = jax.eval_shape(lambda key: fn.init(model, spec, key)[0], jax.ShapeDtypeStruct((2,), jax.numpy.uint32))
    kernels = [leaf for path, leaf in traverse_util.flatten_dict(dict(params)).items() if path[-1] == "kernel"]
    return "replicates" if any(leaf.ndim >= 3 for leaf in kernels) else "scan"


def check_prunable(setup: Setup) -> None:
    """Refuses ``pruning.layers_to_ignore`` patterns that leave no kernel to prune (one sentence)."""
    ignore = setup.layers_to_ignore
    params = jax.eval_shape(setup.init_state).params
    if ignore and not mask_lib.prunable_paths(params, ignore):
        kernels = [mask_lib.layer_name(p) for p in mask_lib.prunable_paths(params)]
        raise UserError(
            f"pruning.layers_to_ignore {ignore} matches every prunable layer of {setup.config.model.name} "
            f"({', '.join(kernels)}): nothing is left to prune"
        )


def _positive(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{field} must be a positive integer, got {value!r}")
    return value


def _like(current, value, field: str):
    """``value`` converted to the type of the field's current value (values may come as strings)."""
    try:
        if isinstance(current, bool):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")
        if isinstance(current, (int, float)):
            return type(current)(value)
    except ValueError:
        raise UserError(f"{field} needs a {type(current).__name__}, got {value!r}") from None
    return value
