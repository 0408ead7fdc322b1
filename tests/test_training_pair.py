"""Tests for nasnet_jax/data/training_pair.py: the pairs a train step draws on device."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax.data import training_pair
from tests.conftest import tiny_config


def test_training_pairs_are_rain_free_at_the_configured_rate():
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
  batch = {"rainy": jnp.asarray(clean), "clean": jnp.asarray(clean)}
  # Mist changes every image at any strength above 0 (few drops or streaks land on a
  # 16x16 crop at low strength), so equal pairs are the rain-free ones.
  make = jax.jit(
    functools.partial(
      training_pair.training_pair,
      rain_fraction=1.0,
      rain_type="mist",
      clean_fraction=0.3,
      photometric=True,
      flip=True,
      rotate=True,
    )
  )
  rain_free = []
  for k in range(8):
    rainy, target = make(jax.random.key(k), batch)
    assert rainy.shape == target.shape == (64, 16, 16, 3)
    rain_free += list(np.all(np.asarray(rainy) == np.asarray(target), axis=(1, 2, 3)))
  assert 0.22 < np.mean(rain_free) < 0.38, np.mean(rain_free)  # 512 pairs, rate 0.3
  none = jax.jit(
    functools.partial(training_pair.training_pair, rain_fraction=1.0, rain_type="mist")
  )
  rainy, target = none(jax.random.key(0), batch)
  assert not np.any(np.all(np.asarray(rainy) == np.asarray(target), axis=(1, 2, 3)))


def test_training_pair_augments_rainy_and_clean_alike():
  """Coordinates in rainy, 255 - coordinates in clean: after the flips, rotations and
  photometric changes drawn per example, the two still correspond pixel for pixel."""
  yy, xx = np.mgrid[0:16, 0:16]
  coords = np.stack([yy * 16, xx * 16, np.full_like(yy, 128)], -1).astype(np.uint8)
  batch = {
    "rainy": jnp.asarray(np.stack([coords] * 32)),
    "clean": jnp.asarray(np.stack([coords] * 32)),
  }
  geometric = jax.jit(functools.partial(training_pair.training_pair, flip=True, rotate=True))
  rainy, clean = geometric(jax.random.key(0), batch)
  np.testing.assert_array_equal(rainy, clean)
  orientations = {
    tuple(np.sign(np.asarray(r[1, 1, :2] - r[0, 0, :2])).tolist()) for r in rainy * 255
  }
  assert len(orientations) == 4  # each corner of the square can come first
  photo = jax.jit(functools.partial(training_pair.training_pair, photometric=True))
  rainy, clean = photo(jax.random.key(1), batch)
  np.testing.assert_array_equal(rainy, clean)
  assert len({float(r[..., 2].mean()) for r in rainy}) > 16  # colours vary per example


def test_geometric_augmentation_moves_to_the_device_with_synthetic_rain():
  config = tiny_config(None)
  assert training_pair.pipeline_augments_geometry(config)
  assert not training_pair.pair_options(config)["rotate"]
  config = tiny_config(None, **{"data.synthetic_rain_fraction": 0.5, "data.clean_fraction": 0.2})
  assert not training_pair.pipeline_augments_geometry(config)
  options = training_pair.pair_options(config)
  assert options["rotate"] and options["flip"] and options["clean_fraction"] == 0.2
  with pytest.raises(ValueError, match="config.data.clean_fraction"):
    training_pair.pair_options(tiny_config(None, **{"data.clean_fraction": 1.5}))
