"""TFDS builder ``synthetic_rain``: rain rendered over photos that ship with the dependencies.

Clean images are the natural colour photos of ``nasnet_jax.data.photos`` (inside the
scikit-image, scikit-learn and matplotlib wheels), so building needs no network. Train
and test come from different photos:

* train: each photo resized so that its short side is 384 px, then rendered
  ``renders_per_image`` times with random strength by ``synthetic_rain``.
* test, whole photos at their own size, and three families told apart by ``rain_type``:

  - ``streak``, ``drop``, ``mist``: the training renderer at strengths 0.2 to 1.0
    (light, input Y-PSNR ~27-31 dB, to heavy, ~12-22 dB);
  - ``heldout_thin_streaks``, ``heldout_heavy_streaks``, ``heldout_mist``,
    ``heldout_drops``: ``heldout_rain``, an independent renderer never used in training,
    at levels 0.35, 0.65 and 1.0 -- generalisation is judged here;
  - ``clean``: the photo itself as input (rainy == clean); a model must give it back.

Configs: ``streak``, ``drop``, ``mist`` and ``mixed`` (each train example one of the
three; the test split has the config's types plus the held-out and clean families).
Features: ``rainy`` and ``clean`` (uint8 HxWx3), ``id`` (text), ``rain_type`` (text) and
``strength`` (float32 in [0, 1]). Stored as ``array_record`` and read with
``tfds.data_source`` -- TensorFlow is not needed. Like every builder, it writes
``overlap.txt`` (clean images shared by train and test; ``nasnet_jax.data.overlap``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from nasnet_jax.data import heldout_rain, local_build, overlap, photos, synthetic_rain

# The test split's rain_type of rain-free examples and prefix of held-out ones, which
# evaluation reports as their own groups.
from nasnet_jax.evaluation_report import CLEAN, HELDOUT_PREFIX

TRAIN_SIZE = 384
TEST_STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)
HELDOUT_LEVELS = (0.35, 0.65, 1.0)


@dataclasses.dataclass
class SyntheticRainConfig(tfds.core.BuilderConfig):
  rain_type: str = "mixed"
  renders_per_image: int = 12
  seed: int = 0


def _short_side(image: np.ndarray, size: int) -> np.ndarray:
  """uint8 (H, W, 3) resized (bicubic) so that its shorter side is ``size``."""
  h, w = image.shape[:2]
  scale = size / min(h, w)
  shape = (max(size, round(w * scale)), max(size, round(h * scale)))
  return np.asarray(Image.fromarray(image).resize(shape, Image.Resampling.BICUBIC))


_render = jax.jit(synthetic_rain.add_rain, static_argnames=("rain_type",))


class SyntheticRain(local_build.BuiltLocally, tfds.core.GeneratorBasedBuilder):
  """Synthetic rain streaks, drops and mist over photos shipped with the dependencies."""

  VERSION = tfds.core.Version("2.1.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": "Smaller raindrops with a water-drop look; drop strengths recalibrated.",
    "1.2.0": "Heavy drops: up to twice as many, more opaque (input 26 -> 17 dB).",
    "2.0.0": "Natural colour photos only (9, from three packages); wider rain that fades "
    "to none at strength 0; test adds held-out-renderer and clean examples.",
    "2.1.0": "overlap.txt: clean images shared between train and test (none expected).",
  }
  # Subclasses (e.g. a tiny one for tests) may change what is rendered.
  train_photos = photos.TRAIN_PHOTOS
  test_photos = photos.TEST_PHOTOS
  train_size = TRAIN_SIZE
  test_size = None  # None: test photos at their own size
  test_strengths = TEST_STRENGTHS
  heldout_kinds = heldout_rain.KINDS
  heldout_levels = HELDOUT_LEVELS
  BUILDER_CONFIGS = [
    SyntheticRainConfig(name=t, description=f"{t} rain", rain_type=t)
    for t in synthetic_rain.RAIN_TYPES + ("mixed",)
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          "rainy": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
          "clean": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
          "id": tfds.features.Text(),
          "rain_type": tfds.features.Text(),
          "strength": tfds.features.Scalar(dtype=np.float32),
        }
      ),
      supervised_keys=("rainy", "clean"),
    )

  def download_and_prepare(self, *args, **kwargs):
    self._overlap = None
    result = super().download_and_prepare(*args, **kwargs)
    if self._overlap:  # built now (not found already built): say what it shares
      self._overlap.log_summary(self.data_dir)
    return result

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the photos ship with installed packages.
    self._overlap = overlap.BuildOverlapCheck(overlap.dataset_name(self), ("train", "test"))
    return {"train": self._generate_examples("train"), "test": self._generate_examples("test")}

  def _generate_examples(self, split: str):
    config: SyntheticRainConfig = self.builder_config
    types = synthetic_rain.RAIN_TYPES if config.rain_type == "mixed" else (config.rain_type,)
    names = self.train_photos if split == "train" else self.test_photos
    split_key = jax.random.fold_in(jax.random.key(config.seed), split == "test")
    for p, name in enumerate(names):
      photo = photos.load_photo(name)
      if split == "train":
        photo = _short_side(photo, self.train_size)
      elif self.test_size:
        photo = photos.square(photo, self.test_size)
      clean = jnp.asarray(photo, jnp.float32) / 255.0
      clean_print = overlap.fingerprint(photo)
      photo_key = jax.random.fold_in(split_key, p)
      if split == "train":
        rng = np.random.default_rng([config.seed, p])
        renders = [
          (types[rng.integers(len(types))], float(rng.uniform()))
          for _ in range(config.renders_per_image)
        ]
      else:
        renders = (
          [(t, s) for t in types for s in self.test_strengths]
          + [(HELDOUT_PREFIX + k, s) for k in self.heldout_kinds for s in self.heldout_levels]
          + [(CLEAN, 0.0)]
        )
      for r, (rain_type, strength) in enumerate(renders):
        if rain_type == CLEAN:
          rainy = photo
        elif rain_type.startswith(HELDOUT_PREFIX):
          rainy = heldout_rain.add_heldout_rain(
            photo, rain_type[len(HELDOUT_PREFIX) :], seed=1000 * p + r, level=strength
          )
        else:
          rainy = _render(jax.random.fold_in(photo_key, r), clean, rain_type, strength)
        if rainy is not photo:
          rainy = np.round(np.clip(np.asarray(rainy), 0, 1) * 255).astype(np.uint8)
        example_id = f"{name}/{rain_type}_{r:03d}_s{strength:.2f}"
        self._overlap.add(split, example_id, clean_print)
        yield (
          example_id,
          {
            "rainy": Image.fromarray(rainy),
            "clean": Image.fromarray(photo),
            "id": example_id,
            "rain_type": rain_type,
            "strength": np.float32(strength),
          },
        )
    self._overlap.split_done(split, self.data_dir)
