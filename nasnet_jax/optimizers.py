"""The optimizer and its learning-rate schedule, from a config (optax)."""

from __future__ import annotations

import ml_collections
import optax

OPTIMIZERS = ("radam", "adamw")


def make_schedule(config: ml_collections.ConfigDict):
  """Learning rate by step: linear warmup over ``warmup_steps``, constant for
  ``constant_steps``, then cosine down to ``end_learning_rate`` at ``total_steps``."""
  peak, total = config.learning_rate, config.total_steps
  warmup = config.get("warmup_steps", 0)
  constant = config.get("constant_steps", 0)
  end = config.get("end_learning_rate", 0.0)
  decay_steps = max(total - warmup - constant, 1)
  pieces, boundaries = [], []
  if warmup:
    pieces.append(optax.linear_schedule(0.0, peak, warmup))
    boundaries.append(warmup)
  if constant:
    pieces.append(optax.constant_schedule(peak))
    boundaries.append(warmup + constant)
  pieces.append(optax.cosine_decay_schedule(peak, decay_steps, alpha=end / peak if peak else 0))
  return pieces[0] if len(pieces) == 1 else optax.join_schedules(pieces, boundaries)


def make_optimizer(config: ml_collections.ConfigDict):
  """``config.optimizer`` ("radam", NASNet's; or "adamw" with ``weight_decay``, DDSA's)
  on ``make_schedule``. Returns (optax transformation, schedule)."""
  schedule = make_schedule(config)
  name = config.get("optimizer", "radam")
  if name == "radam":
    return optax.radam(schedule, b1=config.adam_b1, b2=config.adam_b2), schedule
  if name == "adamw":
    return optax.adamw(
      schedule, b1=config.adam_b1, b2=config.adam_b2, weight_decay=config.get("weight_decay", 0.0)
    ), schedule
  raise ValueError(f"config.optimizer={name!r} is unknown; choose one of {OPTIMIZERS}")
