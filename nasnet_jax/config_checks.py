"""Config checks made before anything is built: one-line errors naming the setting.

``check_config`` is called by ``train_lib.build_training``; ``mixture_entries`` reads
``config.data.mixture`` for the training pipeline.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections

from nasnet_jax import losses
from nasnet_jax.data import training_pair


def check_batch_size(global_batch: int, num_devices: int) -> None:
  if global_batch % num_devices:
    raise ValueError(
      f"config.batch_size={global_batch} does not divide over {num_devices} "
      f"devices; use a multiple of {num_devices}"
    )


@dataclasses.dataclass(frozen=True)
class MixtureEntry:
  name: str
  weight: float
  manual_dir: str | None
  split: str


def mixture_entries(config) -> list[MixtureEntry]:
  """``config.data.mixture`` checked: entries ``(name, weight[, manual_dir[, split]])``.

  An empty mixture trains on ``config.data.name`` alone. A missing manual_dir is
  ``config.data.manual_dir``; a missing split is ``config.data.train_split``.
  """
  entries = []
  for i, entry in enumerate(config.data.get("mixture") or ()):
    if isinstance(entry, str) or not 2 <= len(entry) <= 4:
      raise ValueError(
        f"config.data.mixture[{i}]={entry!r}: expected (name, weight"
        "[, manual_dir[, split]]), e.g. ('rain100h', 1.0, '/data/rain100h')"
      )
    name, weight, *rest = entry
    try:
      weight = float(weight)
    except (TypeError, ValueError):
      weight = -1.0
    if not weight >= 0:
      raise ValueError(f"config.data.mixture[{i}]: weight {entry[1]!r} must be a number >= 0")
    manual_dir = rest[0] if rest and rest[0] else config.data.manual_dir
    split = rest[1] if len(rest) > 1 and rest[1] else config.data.train_split
    entries.append(MixtureEntry(str(name), weight, manual_dir, split))
  if entries and not sum(e.weight for e in entries) > 0:
    raise ValueError("config.data.mixture: the weights sum to 0; give one a positive weight")
  return entries


# (config field, lowest allowed value, what it is): checked before anything is built.
_AT_LEAST = (
  ("learning_rate", None, "the peak learning rate"),  # > 0, below
  ("total_steps", 1, "steps to train"),
  ("batch_size", 1, "the global batch"),
  ("data.crop_size", 1, "the training crop's side"),
  ("keep_checkpoints", 1, "checkpoints kept"),
  ("warmup_steps", 0, "warmup steps"),
  ("constant_steps", 0, "steps at the peak rate"),
  ("end_learning_rate", 0, "the final learning rate"),
  ("log_every_steps", 0, "the log period (0: the last step only)"),
  ("eval_every_steps", 0, "the eval period (0: the last step only)"),
  ("checkpoint_every_steps", 0, "the checkpoint period (0: the last step only)"),
  ("data.synthetic_rain_fraction", 0, "the fraction of pairs with fresh synthetic rain"),
  ("data.num_threads", 1, "grain's reader threads"),
  ("data.prefetch", 1, "host batches read ahead"),
  ("data.device_prefetch", 1, "batches placed on the devices ahead"),
  ("eval.max_images", 0, "images scored during training (0: all)"),
  ("eval.num_sample_images", 0, "sample strips per eval"),
  ("eval.tile", 0, "the inference tile (0: whole images)"),
)


def _field(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node.get(part) if hasattr(node, "get") else None
  return node


def check_config(config: ml_collections.ConfigDict) -> None:
  """One-line ValueError for a numeric setting out of range (a zero batch, a negative
  learning rate, no checkpoint kept, ...) and for the training options; called by
  ``build_training`` before any dataset or parameter is made."""
  for dotted, lowest, what in _AT_LEAST:
    value = _field(config, dotted)
    if value is None:
      continue
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
      raise ValueError(f"config.{dotted}={value!r} must be a number ({what})")
    if lowest is None:
      if not value > 0:
        raise ValueError(f"config.{dotted}={value!r} must be > 0 ({what})")
    elif value < lowest:
      raise ValueError(f"config.{dotted}={value!r} must be >= {lowest} ({what})")
  end_lr = config.get("end_learning_rate", 0.0)
  if end_lr is not None and end_lr > config.learning_rate:
    raise ValueError(
      f"config.end_learning_rate={end_lr} must be <= config.learning_rate="
      f"{config.learning_rate}: the cosine phase decays from the peak to it"
    )
  if float(config.data.synthetic_rain_fraction) > 1:
    raise ValueError(
      f"config.data.synthetic_rain_fraction={config.data.synthetic_rain_fraction} must be in [0, 1]"
    )
  scale = tuple(config.data.get("scale_range", (1.0, 1.0)))
  if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
    raise ValueError(f"config.data.scale_range={scale} must be (low, high) with 0 < low <= high")
  if config.get("loss", "l1_ssim") not in losses.LOSSES:
    raise ValueError(f"config.loss={config.loss!r} is unknown; choose one of {losses.LOSSES}")
  training_pair.pair_options(config)
  mixture_entries(config)
