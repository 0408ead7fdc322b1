"""Tests for nasnet_jax/image_io.py: photos in and out, every kind a user has."""

import numpy as np
import png
import tifffile
from PIL import Image

from nasnet_jax import image_io


def random_rgb(h, w, seed=0, dtype=np.uint8):
  """A random (h, w, 3) image of ``dtype`` (uint8 or uint16)."""
  top = 255 if dtype == np.uint8 else 65535
  return np.random.default_rng(seed).integers(0, top + 1, (h, w, 3)).astype(dtype)


def write_png16(path, array):
  """Writes a 16-bit PNG with pypng (Pillow writes 16-bit greyscale only)."""
  h, w, c = array.shape
  with open(path, "wb") as f:
    png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16).write(
      f, array.reshape(h, w * c).tolist()
    )


def test_photo_reader_writer_round_trips_every_kind(tmp_path):
  cases = {
    "rgb8.png": random_rgb(9, 11),
    "rgb8.tif": random_rgb(9, 11),
    "rgb16.tif": random_rgb(9, 11, 1, np.uint16),
    "rgba16.png": np.dstack(
      [random_rgb(9, 11, 2, np.uint16), random_rgb(9, 11, 3, np.uint16)[..., 0]]
    ),
  }
  for name, array in cases.items():
    path = str(tmp_path / name)
    if name.endswith(".tif"):
      tifffile.imwrite(path, array)
    elif array.dtype == np.uint16:
      write_png16(path, array)
    else:
      Image.fromarray(array).save(path)
    photo = image_io.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, array[..., :3])
    assert (photo.alpha is not None) == (array.shape[-1] == 4)
    out = str(tmp_path / ("out_" + name))
    image_io.write_photo(out, photo)
    again = image_io.read_photo(out)
    np.testing.assert_array_equal(again.rgb, array[..., :3])
    if photo.alpha is not None:
      np.testing.assert_array_equal(again.alpha, array[..., 3])


def test_exif_orientation_is_applied_like_pillow(tmp_path):
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  array = random_rgb(6, 10, 4)
  for orientation in range(1, 9):
    path = str(tmp_path / f"o{orientation}.png")
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(array).save(path, exif=exif)
    with Image.open(path) as im:
      expected = np.asarray(ImageOps.exif_transpose(im))
    photo = image_io.read_photo(path)
    np.testing.assert_array_equal(photo.rgb, expected, err_msg=str(orientation))
    image_io.write_photo(str(tmp_path / "out.png"), photo)
    with Image.open(tmp_path / "out.png") as im:  # written upright, orientation 1
      assert im.getexif().get(274, 1) == 1 and im.size == (expected.shape[1], expected.shape[0])


def test_grayscale_rgba_16bit_and_palette_images_are_converted(tmp_path):
  rgb = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
  gray = rgb[..., 0]
  Image.fromarray(gray).save(tmp_path / "gray.png")
  np.testing.assert_array_equal(
    image_io.read_image(str(tmp_path / "gray.png")), np.repeat(gray[..., None], 3, -1)
  )
  rgba = np.concatenate([rgb, np.full((8, 9, 1), 7, np.uint8)], -1)
  Image.fromarray(rgba).save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(image_io.read_image(str(tmp_path / "rgba.png")), rgb)
  gray16 = gray.astype(np.uint16) * 257
  Image.fromarray(gray16).save(tmp_path / "gray16.png")
  np.testing.assert_array_equal(
    image_io.read_image(str(tmp_path / "gray16.png")), np.repeat(gray[..., None], 3, -1)
  )
  # 16-bit RGB (48-bit PNGs decode to uint16 HxWx3).
  np.testing.assert_array_equal(image_io.to_rgb_uint8(rgb.astype(np.uint16) * 257), rgb)
  Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
  assert image_io.read_image(str(tmp_path / "palette.png")).shape == (8, 9, 3)
