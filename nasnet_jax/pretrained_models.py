"""Trained models that ship inside the package: derain a photo with no training.

    import nasnet_jax
    model, params = nasnet_jax.pretrained()          # the general model
    clean = nasnet_jax.derain(model, params, rainy)  # uint8 HxWx3, any size

Each model is an export (``python -m nasnet_jax.export``: an orbax checkpoint of the
inference parameters and the model config, no optimizer state) in
``nasnet_jax/pretrained/<name>/``, beside the run's ``config.json`` and ``metrics.jsonl``
(``export --training_log``) and ``scores.json`` (``evaluate.py``'s summary on the
``synthetic_rain`` test split). ``docs/pretrained.md`` says what each was trained on and
where it fails.
"""

from __future__ import annotations

import os

from nasnet_jax import checkpointing

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
DEFAULT = "general"


def available() -> list[str]:
  """Names of the shipped models."""
  if not os.path.isdir(PRETRAINED_DIR):
    return []
  return sorted(
    n
    for n in os.listdir(PRETRAINED_DIR)
    if os.path.isdir(os.path.join(PRETRAINED_DIR, n, checkpointing.EXPORT_CHECKPOINT))
  )


def pretrained_path(name: str = DEFAULT) -> str:
  """The export folder of shipped model ``name``."""
  path = os.path.join(PRETRAINED_DIR, name)
  if not os.path.isdir(os.path.join(path, checkpointing.EXPORT_CHECKPOINT)):
    raise FileNotFoundError(
      f"no pretrained model {name!r} in {PRETRAINED_DIR}; shipped: "
      f"{', '.join(available()) or 'none'} (reinstall nasnet-jax if "
      "this is empty)"
    )
  return path


def pretrained(name: str = DEFAULT):
  """``(model, params)`` of shipped model ``name`` (default: the general model), ready for
  ``nasnet_jax.derain(model, params, image)`` or ``model.apply({"params": params}, x)``
  with x float (N, H, W, 3) in [0, 1]."""
  return checkpointing.restore(pretrained_path(name))
