"""Reading and writing images: uint8 RGB for datasets and scoring, and photos as users have them."""

from __future__ import annotations

import dataclasses
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
  if a.ndim not in (2, 3):
    raise ValueError(f"cannot read an image of shape {a.shape}")
  a, _, _ = split_channels(a)
  if a.dtype == np.uint8:
    return np.ascontiguousarray(a)
  if a.dtype == np.bool_:
    return a.astype(np.uint8) * 255
  if a.dtype == np.uint16:
    return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
  if np.issubdtype(a.dtype, np.floating):
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
  if np.issubdtype(a.dtype, np.integer):  # e.g. 32-bit "I" mode: assume 16-bit range
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
    raise ImageReadError(
      f"{path}: not a readable image ({type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''}); remove or replace it"
    ) from e


def write_png(path: str, image: np.ndarray) -> None:
  """Writes uint8 (H, W, 3) to ``path`` atomically (temporary file, then rename)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format="PNG")
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Photos as users have them: any format, 8 or 16 bits, gray or RGB, with or without alpha,
# rotated by an EXIF orientation tag. Used by the nasnet-derain CLI.
#
# Pillow decodes 8-bit images and applies EXIF orientation, but it holds 16-bit colour only
# as 8-bit (and cannot write it), so 16-bit colour PNGs go through pypng and TIFFs through
# tifffile, the libraries the imaging stack itself uses for these.

_ORIENTATION_TAG = 274
# EXIF orientation -> the numpy view that shows the picture upright (as PIL.ImageOps
# .exif_transpose does).
_UPRIGHT = {
  2: lambda a: a[:, ::-1],
  3: lambda a: a[::-1, ::-1],
  4: lambda a: a[::-1],
  5: lambda a: np.swapaxes(a, 0, 1),
  6: lambda a: np.rot90(a, -1),
  7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
  8: lambda a: np.rot90(a, 1),
}


@dataclasses.dataclass
class Photo:
  """A decoded photo, upright.

  Attributes:
    rgb: (H, W, 3) uint8 or uint16 colour (gray replicated to 3 channels).
    alpha: (H, W) alpha of the same dtype, or None.
    gray: whether the file was grayscale (written back as grayscale).
    info: what the writer keeps: PIL ``exif`` (orientation reset) and ``icc_profile``.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None = None
  gray: bool = False
  info: dict = dataclasses.field(default_factory=dict)

  @property
  def bits(self) -> int:
    return 16 if self.rgb.dtype == np.uint16 else 8


def split_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
  """(H, W[, C]) -> (rgb (H, W, 3), alpha (H, W) or None, gray) for C in 1-4 channels."""
  if array.ndim == 2:
    array = array[..., None]
  channels = array.shape[-1]
  if channels not in (1, 2, 3, 4):
    raise ValueError(f"cannot read an image with {channels} channels")
  alpha = array[..., -1] if channels in (2, 4) else None
  color = array[..., :-1] if channels in (2, 4) else array
  gray = color.shape[-1] == 1
  rgb = np.repeat(color, 3, axis=-1) if gray else color
  return np.ascontiguousarray(rgb), alpha, gray


def _to_8_or_16_bit(array: np.ndarray) -> np.ndarray:
  if array.dtype in (np.uint8, np.uint16):
    return array
  if array.dtype == np.bool_:
    return array.astype(np.uint8) * 255
  if np.issubdtype(array.dtype, np.floating):
    return np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16)
  return np.clip(array, 0, 65535).astype(np.uint16)  # e.g. PIL's 32-bit "I" mode


def _png_bit_depth(path: str) -> int:
  with open(path, "rb") as f:
    head = f.read(26)
  return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 else 8


def _read_png16(path: str) -> np.ndarray:
  import png  # pylint: disable=g-import-not-at-top

  width, height, rows, meta = png.Reader(filename=path).asDirect()
  planes = meta["planes"]
  array = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, planes)
  return array


def _read_pil(path: str) -> np.ndarray:
  with Image.open(path) as im:
    if im.mode == "P":
      im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
      im = im.convert("RGB")
    elif im.mode == "1":
      im = im.convert("L")
    elif im.mode == "PA":
      im = im.convert("RGBA")
    return np.asarray(im)


def _metadata(path: str) -> dict:
  """EXIF and ICC profile, where Pillow can read the file's header (else none)."""
  try:
    with Image.open(path) as im:
      return {"exif": im.getexif(), "icc_profile": im.info.get("icc_profile")}
  except Exception:  # pylint: disable=broad-except
    return {"exif": Image.Exif(), "icc_profile": None}


def read_photo(path: str) -> Photo:
  """Reads an image file as it is meant to be seen; raises ImageReadError naming it."""
  ext = os.path.splitext(path)[1].lower()
  try:
    info = _metadata(path)
    if ext in (".tif", ".tiff"):
      array = iio.imread(path, plugin="tifffile")
      if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] > 4:
        array = np.moveaxis(array, 0, -1)  # planar TIFF
    elif ext == ".png" and _png_bit_depth(path) == 16:
      array = _read_png16(path)
    else:
      array = _read_pil(path)
    rgb, alpha, gray = split_channels(_to_8_or_16_bit(array))
  except Exception as e:  # pylint: disable=broad-except
    raise ImageReadError(
      f"{path}: not a readable image ({type(e).__name__}: "
      f"{str(e).splitlines()[0] if str(e) else ''})"
    ) from e
  orientation = info["exif"].get(_ORIENTATION_TAG, 1)
  if orientation in _UPRIGHT:
    rgb = np.ascontiguousarray(_UPRIGHT[orientation](rgb))
    alpha = None if alpha is None else np.ascontiguousarray(_UPRIGHT[orientation](alpha))
  if _ORIENTATION_TAG in info["exif"]:
    info["exif"][_ORIENTATION_TAG] = 1
  return Photo(rgb, alpha, gray, info)


def write_photo(path: str, photo: Photo) -> None:
  """Writes ``photo`` in the format of ``path``'s extension, keeping its bit depth,
  grayness, alpha (where the format has one), EXIF (upright) and ICC profile; atomically
  (temporary file, then rename)."""
  ext = os.path.splitext(path)[1].lower()
  rgb = photo.rgb
  if photo.gray:  # the three channels of a gray input stay nearly equal: average them
    color = np.round(rgb.astype(np.float32).mean(-1, keepdims=True)).astype(rgb.dtype)
  else:
    color = rgb
  if photo.alpha is not None and ext not in (".jpg", ".jpeg", ".bmp"):
    array = np.concatenate([color, photo.alpha[..., None]], -1)
  else:
    array = color
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}{ext}"
  try:
    if ext in (".tif", ".tiff"):
      import tifffile  # pylint: disable=g-import-not-at-top

      tifffile.imwrite(
        tmp,
        array[..., 0] if array.shape[-1] == 1 else array,
        photometric="minisblack" if photo.gray else "rgb",
        extrasamples=("unassalpha",) if array.shape[-1] in (2, 4) else None,
        compression="zlib",
      )
    elif photo.bits == 16 and ext == ".png":
      import png  # pylint: disable=g-import-not-at-top

      h, w, c = array.shape
      with open(tmp, "wb") as f:
        png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16).write(
          f, array.reshape(h, w * c).tolist()
        )
    else:
      if photo.bits == 16:  # JPEG, WebP, BMP hold 8 bits
        array = np.round(array / 257.0).astype(np.uint8)
      im = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
      kwargs = {}
      if photo.info.get("icc_profile"):
        kwargs["icc_profile"] = photo.info["icc_profile"]
      if photo.info.get("exif") and ext in (".jpg", ".jpeg", ".png", ".webp"):
        kwargs["exif"] = photo.info["exif"]
      if ext in (".jpg", ".jpeg"):
        kwargs.update(quality=95, subsampling=0)
      elif ext == ".webp":
        kwargs.update(quality=95)
      im.save(tmp, format=Image.registered_extensions()[ext], **kwargs)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
