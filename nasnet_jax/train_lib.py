"""Training: a jitted data-parallel train step and the loop around it.

    training = train_lib.build_training(config)    # checks the config, binds it once
    state = training.init_state()                  # or restore into training.abstract_state
    state, metrics = training.step(state, training.place_batch(local_batch))

The step is a pure function ``train_step(state, batch) -> (state, metrics)`` jitted with
``NamedSharding``s over a 1-D ``data`` mesh of every device (all hosts): parameters and
optimizer state are replicated, the global batch is split along ``data``, and since the
loss is the mean over the global batch XLA inserts the gradient all-reduce. The same code
runs on one CPU, several GPUs/TPU cores, or several hosts started under
``jax.distributed.initialize()``. ``build_training`` is the one place where a config
becomes a model, an optimizer, shardings and the jitted step: ``train_and_evaluate``, the
tests and both benchmarks use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nasnet_jax import (
  checkpointing,
  config_checks,
  hosts,
  losses,
  metric_writers,
  optimizers,
  storage,
  training_eval,
)
from nasnet_jax.data import pipeline, training_pair
from nasnet_jax.models import convolution, create_model, init_params
from nasnet_jax.stop_request import StopRequest
from nasnet_jax.workdir_lock import WorkdirLock


class TrainState(train_state.TrainState):
  """flax TrainState plus the run's base PRNG key (raw uint32[2])."""

  rng: jax.Array


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or inf."""


def model_config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.model.to_json())


def _new_train_state(
  model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array
) -> TrainState:
  """Initial parameters (``models.init_params``) and optimizer state from ``rng``."""
  init_rng, base_rng = jax.random.split(rng)
  params = init_params(model, init_rng)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, rng=base_rng)


def train_step(
  state: TrainState,
  batch: Mapping[str, jax.Array],
  *,
  pair_config: Mapping[str, Any] | None = None,
  loss_name: str = "l1_ssim",
  intermediate_loss_weight: float = 1.0,
):
  """One optimisation step on a global batch.

  Args:
    state: the train state (replicated).
    batch: ``rainy`` and ``clean``, uint8 (N, H, W, 3), sharded over ``data``.
    pair_config: static; ``training_pair``'s options (``training_pair.pair_options``: synthetic
      rain, rain-free pairs, on-device augmentation), drawn from a key folded from
      (state.rng, step) -- so they are reproducible and resumable. None: the batch as it is.
    loss_name: static; ``losses.image_loss``'s name. Images a network sows into its
      "stage_outputs" collection (``DualStageNet``'s intermediate derained image) add
      their loss times ``intermediate_loss_weight``.

  Returns:
    (new_state, metrics) with scalar ``loss``, ``l1``, ``ssim``, ``grad_norm``.
  """
  step_key = jax.random.fold_in(state.rng, state.step)
  rainy, clean = training_pair.training_pair(step_key, batch, **dict(pair_config or {}))

  def loss_fn(params):
    pred, extra = state.apply_fn({"params": params}, rainy, mutable=["stage_outputs"])
    value, aux = losses.image_loss(loss_name, pred, clean)
    for image in jax.tree.leaves(extra.get("stage_outputs", {})):
      value = value + intermediate_loss_weight * losses.image_loss(loss_name, image, clean)[0]
    return value, aux

  (loss_value, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  return new_state, {"loss": loss_value, **aux, "grad_norm": optax.global_norm(grads)}


def make_mesh() -> Mesh:
  """Every device of every host along one ``data`` axis, in the order ``jax.make_mesh``
  picks for the interconnect (a ring on TPUs); sharding stays automatic."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass(frozen=True)
class Training:
  """What a config binds once, for the loop, the tests and the benchmarks alike.

  Attributes:
    config: the checked config.
    model: the network (``create_model(config.model)``).
    mesh: a 1-D ``data`` mesh over every device.
    tx, schedule: the optimizer and its learning-rate schedule (``make_optimizer``).
    abstract_state: the train state's shapes and shardings (``jax.eval_shape``: nothing
      is initialised), what a checkpoint is restored into.
    state_sharding, batch_sharding: replicated state; batch split along ``data``.
    step: ``train_step`` bound to the config's loss and training-pair options, jitted for
      the mesh with the state donated: (state, batch) -> (state, metrics).
  """

  config: ml_collections.ConfigDict
  model: nn.Module
  mesh: Mesh
  tx: optax.GradientTransformation
  schedule: Any
  abstract_state: TrainState
  state_sharding: Any
  batch_sharding: NamedSharding
  step: Any

  def init_state(self, seed: int | None = None) -> TrainState:
    """The initial train state (from ``config.seed`` unless ``seed``), placed on the mesh.
    Build it only when there is no checkpoint to restore."""
    rng = jax.random.PRNGKey(self.config.seed if seed is None else seed)
    return jax.device_put(_new_train_state(self.model, self.tx, rng), self.state_sharding)

  def place_batch(self, local: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This host's part of a global batch (``rainy``, ``clean`` uint8 NHWC) -> global
    arrays split along ``data``."""
    return {
      k: jax.make_array_from_process_local_data(self.batch_sharding, local[k])
      for k in ("rainy", "clean")
    }

  def lower(self, batch_shape: tuple[int, int, int, int]):
    """The step lowered for uint8 batches of ``batch_shape`` (for its cost or memory)."""
    batch = {
      k: jax.ShapeDtypeStruct(batch_shape, jnp.uint8, sharding=self.batch_sharding)
      for k in ("rainy", "clean")
    }
    return self.step.lower(self.abstract_state, batch)


def build_training(config: ml_collections.ConfigDict, mesh: Mesh | None = None) -> Training:
  """Checks ``config`` and binds it once: model, optimizer and schedule, the abstract
  state, the shardings and the jitted step (compiled with ``convolution.compiler_options``
  for the model). ``mesh`` defaults to every device along ``data``."""
  config_checks.check_config(config)
  mesh = mesh if mesh is not None else make_mesh()
  config_checks.check_batch_size(config.batch_size, mesh.size)
  model = create_model(config.model)
  tx, schedule = optimizers.make_optimizer(config)
  replicated = NamedSharding(mesh, P())
  shapes = jax.eval_shape(
    lambda rng: _new_train_state(model, tx, rng), jax.random.PRNGKey(config.seed)
  )
  state_sharding = jax.tree.map(lambda _: replicated, shapes)
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes
  )
  batch_sharding = NamedSharding(mesh, P("data"))
  step = functools.partial(
    train_step,
    pair_config=training_pair.pair_options(config),
    loss_name=config.get("loss", "l1_ssim"),
    intermediate_loss_weight=config.get("intermediate_loss_weight", 1.0),
  )
  jitted = jax.jit(
    step,
    in_shardings=(state_sharding, batch_sharding),
    out_shardings=(state_sharding, replicated),
    donate_argnums=(0,),
    compiler_options=convolution.compiler_options(model),
  )
  return Training(
    config=config,
    model=model,
    mesh=mesh,
    tx=tx,
    schedule=schedule,
    abstract_state=abstract_state,
    state_sharding=state_sharding,
    batch_sharding=batch_sharding,
    step=jitted,
  )


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every element of every leaf of ``tree`` is finite, as one device scalar."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _every(step: int, period: int) -> bool:
  """True every ``period`` steps; a period of 0 (or less) never."""
  return period > 0 and step % period == 0


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from ``workdir/checkpoints`` if present), evaluates, checkpoints.

  Returns the final train state. Raises ValueError for bad configuration and
  NonFiniteLossError if the loss diverges (the last good checkpoint is kept).
  """
  training = build_training(config)  # every config error before anything is built
  hosts.check_on_every_host(lambda: storage.check_writable(workdir, "--workdir"), "--workdir")
  with WorkdirLock(workdir):  # one run per workdir
    return _train(training, workdir)


def _train(training: Training, workdir: str) -> TrainState:
  """``train_and_evaluate``'s loop, once the config is bound and the workdir is ours."""
  config = training.config
  mixture = config_checks.mixture_entries(config)
  model = training.model
  model_cfg = model_config_dict(config)

  drop_overlap = bool(config.data.get("drop_test_overlap", False))
  if mixture:
    train_source = pipeline.Mixture(
      [
        pipeline.get_data_source(e.name, e.split, config.data.data_dir, e.manual_dir, drop_overlap)
        for e in mixture
      ],
      [e.weight for e in mixture],
    )
  else:
    train_source = pipeline.get_data_source(
      config.data.name,
      config.data.train_split,
      config.data.data_dir,
      config.data.manual_dir,
      drop_overlap,
    )
  eval_source = pipeline.get_data_source(
    config.data.name, config.data.eval_split, config.data.data_dir, config.data.manual_dir
  )
  dataset = pipeline.train_dataset(
    train_source,
    crop_size=config.data.crop_size,
    global_batch_size=config.batch_size,
    seed=config.seed,
    flip=config.data.random_flip and training_pair.pipeline_augments_geometry(config),
    rotate=config.data.random_rotate and training_pair.pipeline_augments_geometry(config),
    scale_range=tuple(config.data.get("scale_range", (1.0, 1.0))),
    pad_small_images=config.data.pad_small_images,
  )
  data_iter = pipeline.train_iterator(
    dataset,
    num_threads=config.data.num_threads,
    prefetch=config.data.prefetch,
    place=training.place_batch,
    device_prefetch=config.data.device_prefetch,
  )

  manager = checkpointing.make_manager(workdir, config.keep_checkpoints)
  restored = checkpointing.restore_latest(manager, training.abstract_state, model_cfg)
  start_step = 0
  if restored is not None:
    start_step, state, data_state = restored
    data_iter.set_state(data_state)
    print(f"Resumed from {manager.directory}/{start_step}", flush=True)
  else:
    state = training.init_state()
  is_main = jax.process_index() == 0
  if is_main:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
    metric_writers.truncate_after(os.path.join(workdir, "metrics.jsonl"), start_step)
  writer = metric_writers.MetricWriter(workdir, enabled=is_main, total_steps=config.total_steps)
  step_fn, schedule = training.step, training.schedule
  data_state = data_iter.get_state()
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  if is_main:
    print(
      f"Model {model_cfg.get('name', 'nasnet')}: {num_params:,} parameters; "
      f"{jax.device_count()} device(s) ({jax.devices()[0].platform}); global batch "
      f"{config.batch_size}, crop {config.data.crop_size}; steps {start_step} -> "
      f"{config.total_steps}",
      flush=True,
    )

  def save(step):
    if not bool(_all_finite(state.params)):  # one reduction, one host sync
      raise NonFiniteLossError(f"parameters became NaN/inf before step {step}")
    checkpointing.save(manager, step, state, data_state, model_cfg)

  pending = []
  timer = metric_writers.StepTimer(start_step)
  step = start_step
  with (
    StopRequest(training.mesh) as stop,
    contextlib.closing(data_iter),
  ):  # closing: stops its threads
    while step < config.total_steps:
      batch = next(data_iter)
      data_state = data_iter.get_state()
      state, step_metrics = step_fn(state, batch)
      step += 1
      pending.append(step_metrics)
      stopping = stop.poll()  # read once: a signal arriving later counts from next step
      log_now = _every(step, config.log_every_steps) or step == config.total_steps
      ckpt_now = (
        _every(step, config.checkpoint_every_steps)
        or step == config.total_steps
        or stopping is not None
      )
      if log_now or ckpt_now:
        fetched = jax.device_get(pending)
        pending = []
        losses_seen = [float(m["loss"]) for m in fetched]
        if not all(math.isfinite(v) for v in losses_seen):
          last = manager.latest_step()
          kept = (
            f"the last good checkpoint ({manager.directory}/{last}) is kept"
            if last is not None
            else "no checkpoint had been written yet"
          )
          raise NonFiniteLossError(
            f"loss became NaN/inf by step {step}; {kept}: lower "
            "--config.learning_rate or check the data, then rerun"
          )
        if log_now:
          done, seconds = timer.lap(step)
          mean = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
          mean["lr"] = float(schedule(step - 1))
          mean["img_per_s"] = done * config.batch_size / max(seconds, 1e-9)
          writer.write_train(step, mean, seconds_per_step=seconds / done)
      if (_every(step, config.eval_every_steps) or step == config.total_steps) and not stopping:
        eval_start = time.time()
        eval_metrics = training_eval.evaluate_during_training(
          config, model, state.params, eval_source, workdir, step
        )
        writer.write_eval(step, eval_metrics)
        timer.exclude(time.time() - eval_start)
      if ckpt_now:
        save(step)
      if stopping is not None:
        print(
          f"Stopped at step {step} ({stopping}); checkpoint saved in "
          f"{manager.directory}/{step}. Rerun the same command to resume.",
          flush=True,
        )
        break
  writer.close()
  manager.close()
  return state
