"""Reading and writing images as uint8 RGB."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
  """A file that should be an image could not be decoded."""


def is_image_file(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
  """Any decoded image -> uint8 (H, W, 3).

  Grayscale is replicated, alpha dropped, 16-bit scaled by 1/257 and rounded, floats
  taken as [0, 1]; a multi-frame file gives its first frame.
  """
  a = np.asarray(array)
  if a.ndim == 4:
    a = a[0]
  if a.ndim == 2:
    a = a[..., None]
  if a.ndim != 3:
    raise ValueError(f"cannot read an image of shape {a.shape}")
  if a.shape[-1] in (2, 4):        # gray + alpha, RGB + alpha: drop alpha
    a = a[..., :-1]
  if a.shape[-1] == 1:
    a = np.repeat(a, 3, axis=-1)
  if a.shape[-1] != 3:
    raise ValueError(f"cannot read an image with {a.shape[-1]} channels")
  if a.dtype == np.uint8:
    return np.ascontiguousarray(a)
  if a.dtype == np.bool_:
    return a.astype(np.uint8) * 255
  if a.dtype == np.uint16:
    return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
  if np.issubdtype(a.dtype, np.floating):
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
  if np.issubdtype(a.dtype, np.integer):   # e.g. 32-bit "I" mode: assume 16-bit range
    return np.round(np.clip(a, 0, 65535).astype(np.float64) / 257.0).astype(np.uint8)
  raise ValueError(f"cannot read an image of dtype {a.dtype}")


def read_image(path: str) -> np.ndarray:
  """Reads ``path`` as uint8 (H, W, 3) RGB; raises ImageReadError naming the file."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ImageReadError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from e
  return decode_image(data, path)


def decode_image(data: bytes, path: str) -> np.ndarray:
  """Decodes the encoded image ``data`` (the bytes of ``path``) as uint8 (H, W, 3) RGB.

  ``path`` names the file in the error and gives the format hint by its extension.
  """
  try:
    return to_rgb_uint8(iio.imread(data, extension=os.path.splitext(path)[1].lower() or None))
  except Exception as e:  # pylint: disable=broad-except
    raise ImageReadError(f"{path}: not a readable image ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); remove or replace it"
                         ) from e


def write_png(path: str, image: np.ndarray) -> None:
  """Writes uint8 (H, W, 3) to ``path`` atomically (temporary file, then rename)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format="PNG")
  os.replace(tmp, path)
