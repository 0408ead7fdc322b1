"""The (rainy, clean) pair a train step learns from, drawn on device.

Synthetic rain rendered over the clean image, rain-free pairs and the flips, rotations
and photometric changes are drawn per example from the step's key inside the jitted
step, so they are reproducible, resumable, and the same whatever the device layout.
``pair_options(config)`` turns ``config.data`` into ``training_pair``'s static options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from nasnet_jax.data import augment, synthetic_rain


def training_pair(
  key: jax.Array,
  batch: Mapping[str, jax.Array],
  *,
  rain_fraction: float = 0.0,
  rain_type: str = "mixed",
  rain_weights: tuple[float, ...] | None = None,
  clean_fraction: float = 0.0,
  photometric: bool = False,
  flip: bool = False,
  rotate: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """The (rainy, clean) float32 (N, H, W, 3) in [0, 1] a train step learns from.

  In this order, each drawn per example from ``key``:

  1. ``photometric``: the same random gamma, white balance and brightness for rainy and
     clean (``augment.photometric``);
  2. ``rain_fraction`` of the examples get their rainy input replaced by synthetic rain
     of ``rain_type`` (odds ``rain_weights``) rendered over their clean image;
  3. ``clean_fraction`` of the examples become rain-free pairs (rainy = clean), so the
     network learns to leave a photo without rain alone;
  4. ``flip`` / ``rotate``: the same random flip / rot90 for both (``augment.dihedral``),
     after the rain, so rain is seen in every orientation.

  ``batch`` holds ``rainy`` and ``clean`` uint8 (N, H, W, 3). All arguments but the
  key and the batch are static.
  """
  rainy = batch["rainy"].astype(jnp.float32) / 255.0
  clean = batch["clean"].astype(jnp.float32) / 255.0
  k_photo, k_pick, k_rain, k_clean, k_geo = jax.random.split(key, 5)
  picks = lambda k, p: jax.random.uniform(k, (rainy.shape[0], 1, 1, 1)) < p
  if photometric:
    rainy, clean = augment.photometric(k_photo, (rainy, clean))
  if rain_fraction > 0.0:
    fresh = synthetic_rain.add_rain_batch(k_rain, clean, rain_type, weights=rain_weights)
    rainy = jnp.where(picks(k_pick, rain_fraction), fresh, rainy)
  if clean_fraction > 0.0:
    rainy = jnp.where(picks(k_clean, clean_fraction), clean, rainy)
  return augment.dihedral(k_geo, (rainy, clean), flip=flip, rotate=rotate)


def pipeline_augments_geometry(config) -> bool:
  """Whether the host pipeline flips and rotates crops (True) or the train step does,
  after rendering synthetic rain (False: whenever rain is rendered on the fly)."""
  return not float(config.data.synthetic_rain_fraction) > 0.0


def pair_options(config) -> dict[str, Any]:
  """``training_pair``'s options from ``config.data``, checked."""
  clean_fraction = float(config.data.get("clean_fraction", 0.0))
  if not 0.0 <= clean_fraction <= 1.0:
    raise ValueError(f"config.data.clean_fraction={clean_fraction} must be in [0, 1]")
  on_device = not pipeline_augments_geometry(config)
  return dict(
    rain_fraction=float(config.data.synthetic_rain_fraction),
    rain_type=config.data.synthetic_rain_type,
    rain_weights=synthetic_rain_weights(config),
    clean_fraction=clean_fraction,
    photometric=bool(config.data.get("photometric_augmentation", False)),
    flip=on_device and bool(config.data.random_flip),
    rotate=on_device and bool(config.data.random_rotate),
  )


def synthetic_rain_weights(config) -> tuple[float, ...] | None:
  """``config.data.synthetic_rain_weights`` checked, as a static tuple (None: uniform)."""
  weights = config.data.get("synthetic_rain_weights")
  if not weights:
    return None
  try:
    synthetic_rain.normalized_weights(weights)
  except ValueError as e:
    raise ValueError(f"config.data.synthetic_rain_weights: {e}") from None
  return tuple(float(w) for w in weights)
