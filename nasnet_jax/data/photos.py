"""Natural colour photos that ship inside installed packages, so data builds offline.

The synthetic rain data is rendered over these. Only natural colour photographs are
listed: scikit-image's textures (grass, gravel, brick), microscopy (ihc, retina), the
Hubble field and its grayscale pictures are left out, because a network trained on them
learns statistics no user photo has (the demo of builder 1.x, trained partly on them,
darkened every clean photo).

Nine photos from three packages (scikit-image, scikit-learn, matplotlib; the last two are
dependencies for these files alone):

* train (5): ``astronaut`` (portrait, white suit and a flag), ``rocket`` (sky, launch
  tower), ``motorcycle_left`` / ``motorcycle_right`` (a stereo pair: the same scene from
  two viewpoints, so they count as one scene), ``china`` (temple roofs, trees, sky);
* test (4), never trained on: ``chelsea`` (a cat), ``coffee`` (a cup from above),
  ``flower`` (a close-up), ``grace_hopper`` (a portrait in uniform).

Names are ``package:relative/path``; ``load_photo`` finds the file through the package's
import spec without importing the package (importing scikit-learn takes seconds).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from PIL import Image

PHOTO_FILES = {
  "astronaut": "skimage:data/astronaut.png",
  "rocket": "skimage:data/rocket.jpg",
  "motorcycle_left": "skimage:data/motorcycle_left.png",
  "motorcycle_right": "skimage:data/motorcycle_right.png",
  "china": "sklearn:datasets/images/china.jpg",
  "chelsea": "skimage:data/chelsea.png",
  "coffee": "skimage:data/coffee.png",
  "flower": "sklearn:datasets/images/flower.jpg",
  "grace_hopper": "matplotlib:mpl-data/sample_data/grace_hopper.jpg",
}
TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "china")
TEST_PHOTOS = ("chelsea", "coffee", "flower", "grace_hopper")


def photo_path(name: str) -> str:
  """The file of photo ``name`` (a key of ``PHOTO_FILES``) inside its package."""
  if name not in PHOTO_FILES:
    raise ValueError(f"unknown photo {name!r}; choose from {sorted(PHOTO_FILES)}")
  package, relative = PHOTO_FILES[name].split(":", 1)
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
      f"photo {name!r} ships with the package {package!r}, which is "
      f"not installed: pip install -e . installs it"
    )
  path = os.path.join(list(spec.submodule_search_locations)[0], relative)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"{path} is missing: photo {name!r} needs a complete install "
      f"of {package!r} (pip install --force-reinstall {package})"
    )
  return path


def load_photo(name: str) -> np.ndarray:
  """Photo ``name`` as uint8 (H, W, 3) RGB."""
  with Image.open(photo_path(name)) as image:
    return np.asarray(image.convert("RGB"), np.uint8)


def square(image: np.ndarray, size: int) -> np.ndarray:
  """The centred square crop of uint8 (H, W, 3) ``image``, resized to (size, size, 3)."""
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  crop = Image.fromarray(image[top : top + side, left : left + side])
  return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))
