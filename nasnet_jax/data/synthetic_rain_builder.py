"""TFDS builder ``synthetic_rain``: the JAX rain models rendered over shipped photos.

Clean images are the colour (and a few grayscale, converted) natural photos that
scikit-image ships inside its wheel, so building needs no network. Train and test come
from different photos:

* train: each photo is centre-cropped to a square and resized to 384x384, then rendered
  ``renders_per_image`` times with random strength.
* test: whole photos at their own size, each rendered at a fixed ladder of strengths from
  light (input Y-PSNR ~26-28 dB, like Rain100L) to heavy (~13-17 dB, like Rain100H).

Configs: ``streak``, ``drop``, ``mist`` and ``mixed`` (each example one of the three).
Features: ``rainy`` and ``clean`` (uint8 HxWx3), ``id`` (text), ``rain_type`` (text) and
``strength`` (float32 in [0, 1]). Stored as ``array_record`` and read with
``tfds.data_source`` -- TensorFlow is not needed.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from skimage import data as skdata

from nasnet_jax.data import synthetic_rain

# Files inside scikit-image's wheel (``skimage/data``), read directly so that nothing is
# ever fetched.
TRAIN_PHOTOS = ("astronaut.png", "rocket.jpg", "motorcycle_left.png",
                "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "grass.png",
                "gravel.png", "brick.png")
TEST_PHOTOS = ("chelsea.png", "coffee.png")
TRAIN_SIZE = 384
TEST_STRENGTHS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclasses.dataclass
class SyntheticRainConfig(tfds.core.BuilderConfig):
  rain_type: str = "mixed"
  renders_per_image: int = 12
  seed: int = 0


def load_photo(filename: str) -> np.ndarray:
  """A photo shipped in scikit-image's wheel as uint8 (H, W, 3) RGB."""
  path = os.path.join(os.path.dirname(skdata.__file__), filename)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: the synthetic_rain builder needs the "
                            "sample photos of a complete scikit-image install "
                            "(pip install --force-reinstall scikit-image)")
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), np.uint8)


def _square(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  crop = Image.fromarray(image[top:top + side, left:left + side])
  return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


_render = jax.jit(synthetic_rain.add_rain, static_argnames=("rain_type",))


class SyntheticRain(tfds.core.GeneratorBasedBuilder):
  """Synthetic rain streaks, drops and mist over scikit-image's sample photos."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "Smaller raindrops with a water-drop look; drop strengths recalibrated.",
      "1.2.0": "Heavy drops: up to twice as many, more opaque (input 26 -> 17 dB).",
  }
  # Subclasses (e.g. a tiny one for tests) may change what is rendered.
  train_photos = TRAIN_PHOTOS
  test_photos = TEST_PHOTOS
  train_size = TRAIN_SIZE
  test_size = None          # None: test photos at their own size
  test_strengths = TEST_STRENGTHS
  BUILDER_CONFIGS = [
      SyntheticRainConfig(name=t, description=f"{t} rain", rain_type=t)
      for t in synthetic_rain.RAIN_TYPES + ("mixed",)
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "rainy": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
            "clean": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
            "id": tfds.features.Text(),
            "rain_type": tfds.features.Text(),
            "strength": tfds.features.Scalar(dtype=np.float32),
        }),
        supervised_keys=("rainy", "clean"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the photos ship with scikit-image.
    return {"train": self._generate_examples("train"),
            "test": self._generate_examples("test")}

  def _generate_examples(self, split: str):
    config: SyntheticRainConfig = self.builder_config
    types = (synthetic_rain.RAIN_TYPES if config.rain_type == "mixed"
             else (config.rain_type,))
    photos = self.train_photos if split == "train" else self.test_photos
    split_key = jax.random.fold_in(jax.random.key(config.seed), split == "test")
    for p, name in enumerate(photos):
      photo = load_photo(name)
      if split == "train":
        photo = _square(photo, self.train_size)
      elif self.test_size:
        photo = _square(photo, self.test_size)
      clean = jnp.asarray(photo, jnp.float32) / 255.0
      photo_key = jax.random.fold_in(split_key, p)
      if split == "train":
        rng = np.random.default_rng([config.seed, p])
        renders = [(types[rng.integers(len(types))], float(rng.uniform()))
                   for _ in range(config.renders_per_image)]
      else:
        renders = [(t, s) for t in types for s in self.test_strengths]
      for r, (rain_type, strength) in enumerate(renders):
        rainy = _render(jax.random.fold_in(photo_key, r), clean, rain_type, strength)
        rainy = np.round(np.clip(np.asarray(rainy), 0, 1) * 255).astype(np.uint8)
        example_id = f"{os.path.splitext(name)[0]}/{rain_type}_{r:03d}_s{strength:.2f}"
        yield example_id, {
            "rainy": Image.fromarray(rainy),
            "clean": Image.fromarray(photo),
            "id": example_id,
            "rain_type": rain_type,
            "strength": np.float32(strength),
        }
