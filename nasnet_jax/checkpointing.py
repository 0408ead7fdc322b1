"""Orbax checkpoints of a training run, and restoring a model from one.

A run's checkpoints live in ``WORKDIR/checkpoints/<step>/`` (orbax ``CheckpointManager``),
each with three items:

* ``state``: the train state pytree (step, params, optimizer state, PRNG key);
* ``data``: the input iterator's state (JSON), so a resumed run continues the same stream;
* ``model``: the model config (JSON), so the network can be rebuilt without the config.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from nasnet_jax import log_filters, storage

CHECKPOINT_SUBDIR = "checkpoints"
QUARANTINE_SUBDIR = "checkpoints_unreadable"


def make_manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
  """The run's CheckpointManager in ``workdir/checkpoints`` keeping ``keep`` checkpoints."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True
  )
  return ocp.CheckpointManager(
    os.path.abspath(os.path.join(workdir, CHECKPOINT_SUBDIR)),
    options=options,
    item_names=("state", "data", "model"),
  )


def save(
  manager: ocp.CheckpointManager,
  step: int,
  state: Any,
  data_state: Mapping[str, Any],
  model_config: Mapping[str, Any],
) -> None:
  """Writes checkpoint ``step`` (atomically: orbax renames a finished temporary dir).

  A full or read-only disk is ``storage.NoSpaceError`` / ``NotWritableError`` naming the
  folder and the checkpoint kept; the half-written temporary folder is removed."""
  directory = str(manager.directory)
  kept = manager.latest_step()
  try:
    os.makedirs(directory, exist_ok=True)  # deleted while the run trained: write it anew
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(dict(data_state)),
        model=ocp.args.JsonSave(dict(model_config)),
      ),
      force=True,
    )
    manager.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    if kept is not None and os.path.isdir(os.path.join(directory, str(kept))):
      where = f"checkpoint {kept} is kept"
    else:
      where = "no earlier checkpoint is in it"
    error = storage.as_storage_error(e, directory, f"saving checkpoint {step}", where)
    if error is None:
      raise
    for partial in glob.glob(os.path.join(glob.escape(directory), f"{step}.orbax-checkpoint-tmp*")):
      shutil.rmtree(partial, ignore_errors=True)
    raise error from e


def _quarantine(manager: ocp.CheckpointManager, step: int) -> str:
  """Moves an unreadable checkpoint aside (kept, never deleted) and returns where."""
  src = os.path.join(str(manager.directory), str(step))
  dst_root = os.path.join(os.path.dirname(str(manager.directory)), QUARANTINE_SUBDIR)
  os.makedirs(dst_root, exist_ok=True)
  dst = os.path.join(dst_root, str(step))
  if os.path.exists(dst):
    shutil.rmtree(dst)
  shutil.move(src, dst)
  manager.reload()
  return dst


def model_config_mismatch(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
  """Fields of the architecture that differ, as "field: saved -> wanted" strings.

  ``remat``, ``dtype`` and ``conv_impl`` change how the
  network is computed, not its parameters, so they may differ between runs.
  """
  ignore = {"remat", "dtype", "conv_impl"}
  keys = sorted((set(saved) | set(wanted)) - ignore)
  return [
    f"{k}: {saved.get(k)!r} in checkpoint vs {wanted.get(k)!r} in config"
    for k in keys
    if saved.get(k) != wanted.get(k)
  ]


def restore_latest(
  manager: ocp.CheckpointManager, abstract_state: Any, model_config: Mapping[str, Any]
):
  """Restores the newest readable checkpoint.

  Returns (step, state, data_state) or None when there is no checkpoint. An unreadable
  (e.g. truncated) checkpoint is moved to ``checkpoints_unreadable/`` and the previous one
  is tried, with a warning. A checkpoint of another architecture raises ValueError.
  """
  for step in sorted(manager.all_steps(), reverse=True):
    error = None
    try:
      saved_model = manager.restore(step, args=ocp.args.Composite(model=ocp.args.JsonRestore()))[
        "model"
      ]
    except Exception as e:  # pylint: disable=broad-except
      error = e
    if not _on_every_host(error is None):
      _warn_unreadable(manager, step, error)
      continue
    diff = model_config_mismatch(saved_model, model_config)
    if diff:
      raise ValueError(
        f"{manager.directory} holds a checkpoint of another architecture ("
        + "; ".join(diff)
        + "); use a new --workdir or the matching --config.model"
      )
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
        ),
      )
    except Exception as e:  # pylint: disable=broad-except
      error = e
    if not _on_every_host(error is None):
      _warn_unreadable(manager, step, error)
      continue
    return step, restored["state"], restored["data"]
  return None


def _on_every_host(ok: bool) -> bool:
  """Whether ``ok`` holds on every process: the hosts restore the same step or none."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(np.all(multihost_utils.process_allgather(np.array([ok], np.int32))))


def _warn_unreadable(manager, step, error):
  where = _quarantine(manager, step) if jax.process_index() == 0 else "(host 0 moves it)"
  reason = (
    f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    if error is not None
    else "unreadable on another host"
  )
  message = (
    f"WARNING: checkpoint {manager.directory}/{step} is unreadable ({reason}); "
    f"moved it to {where} and falling back to the previous checkpoint"
  )
  logging.warning(message)
  print(message, flush=True)


def _resolve(path: str) -> tuple[str, int | None]:
  """(checkpoints directory, step or None for latest) for a workdir, checkpoints dir or step dir."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} is a file: pass a training workdir, its checkpoints/ "
      "folder, one checkpoint step folder, or an export (its folder "
      f"or its {JAX_EXPORT_FILE})"
    )
  if not os.path.isdir(path):
    raise FileNotFoundError(
      f"{path} does not exist: pass a training workdir, its "
      "checkpoints/ folder, one checkpoint step folder, or an export "
      f"(its folder or its {JAX_EXPORT_FILE})"
    )
  if os.path.isdir(os.path.join(path, CHECKPOINT_SUBDIR)):
    return os.path.join(path, CHECKPOINT_SUBDIR), None
  name = os.path.basename(path)
  if name.isdigit() and os.path.isdir(os.path.join(path, "state")):
    return os.path.dirname(path), int(name)
  return path, None


EXPORT_CHECKPOINT = "checkpoint"  # an export's orbax checkpoint (nasnet_jax.export)
JAX_EXPORT_FILE = "derain.jax_export"  # beside it: the serialized jax.export function


def export_checkpointer() -> ocp.Checkpointer:
  """Reads and writes an export's checkpoint: items ``params`` and ``model`` (JSON)."""
  return ocp.Checkpointer(
    ocp.CompositeCheckpointHandler(
      params=ocp.StandardCheckpointHandler(), model=ocp.JsonCheckpointHandler()
    )
  )


def _restore_export(path: str) -> tuple[dict[str, Any], Any]:
  checkpointer = export_checkpointer()
  directory = os.path.join(path, EXPORT_CHECKPOINT)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  try:
    saved = checkpointer.metadata(directory).item_metadata["params"]
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
    restored = checkpointer.restore(
      directory,
      args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target), model=ocp.args.JsonRestore()
      ),
    )
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
      f"{directory} is not a readable export ({type(e).__name__}: "
      f"{str(e).splitlines()[0][:200] if str(e) else ''}); export it again "
      "with python -m nasnet_jax.export"
    ) from e
  return dict(restored["model"]), restored["params"]


def restore_config_and_params(path: str) -> tuple[dict[str, Any], Any]:
  """``(model config, params)`` from a training checkpoint or an export (see ``restore``)."""
  expanded = os.path.abspath(os.path.expanduser(path))
  if os.path.basename(expanded) == JAX_EXPORT_FILE and os.path.isfile(expanded):
    expanded = os.path.dirname(expanded)  # an export's function file: read its folder
  if os.path.isdir(os.path.join(expanded, EXPORT_CHECKPOINT, "params")):
    return _restore_export(expanded)
  directory, step = _resolve(path)
  with log_filters.harmless_lines_dropped():  # orbax's three read-only notices
    manager = ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={
        "state": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
        "model": ocp.JsonCheckpointHandler(),
      },
    )
  # Restore onto this process's first device whatever topology the run was saved from
  # (e.g. trained over 2 or 8 devices): a target built from the saved shapes and dtypes.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    raise FileNotFoundError(
      f"no checkpoint in {directory}: train first, or pass the "
      "folder that holds checkpoints/ (or an export)"
    )
  candidates = [step] if step is not None else steps
  last_error = None
  for s in candidates:
    try:
      saved = manager.item_metadata(s)["state"]
      target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved
      )
      restored = manager.restore(
        s,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), model=ocp.args.JsonRestore()
        ),
      )
    except Exception as e:  # pylint: disable=broad-except
      last_error = e
      print(
        f"WARNING: checkpoint {directory}/{s} is unreadable ({type(e).__name__}); "
        "trying the previous one",
        flush=True,
      )
      continue
    return dict(restored["model"]), restored["state"]["params"]
  raise ValueError(f"no readable checkpoint in {directory}: {last_error}")


def restore(path: str):
  """Restores ``(model, params)`` for inference.

  Args:
    path: a training workdir (its latest checkpoint is used), its ``checkpoints/``
      folder, one step folder ``checkpoints/<step>``, or an export
      (``python -m nasnet_jax.export``, which holds the parameters only).

  Returns:
    (model, params): a Flax module built from the saved model config and its
    parameters, ready for ``model.apply({"params": params}, images)`` or
    ``nasnet_jax.derain(model, params, image)``.
  """
  from nasnet_jax.models import create_model  # pylint: disable=g-import-not-at-top

  model_config, params = restore_config_and_params(path)
  return create_model(model_config), params
