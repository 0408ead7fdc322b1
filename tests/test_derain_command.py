"""nasnet-derain (nasnet_jax/derain_command.py) on a folder of mixed photos."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from nasnet_jax import derain_command, image_io, inference
from tests.conftest import remount
from tests.test_export import tiny_export
from tests.test_image_io import random_rgb, write_png16

TINY = {
  "name": "nasnet",
  "stages": 1,
  "blocks": 1,
  "features": 4,
  "attention": "na",
  "fuse_stages": True,
  "input_normalization": "",
  "remat": False,
  "dtype": "float32",
  "conv_impl": "auto",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  source, model, params = tiny_export(tmp_path_factory.mktemp("ckpt"), TINY, seed=3)
  return source, inference.Derainer(model, params)


def _derain(args):
  """nasnet-derain with the JAX backend, whose output these tests compare exactly with
  ``Derainer``'s (ONNX Runtime's: tests/test_onnx.py)."""
  return subprocess.run(
    [sys.executable, "-m", "nasnet_jax.derain_command", "--backend=jax"] + [str(a) for a in args],
    capture_output=True,
    text=True,
    timeout=600,
  )


def test_cli_derains_a_folder_of_mixed_photos(checkpoint, tmp_path):
  source, derainer = checkpoint
  photos = tmp_path / "photos"
  (photos / "sub").mkdir(parents=True)
  rgb8, rgb16 = random_rgb(30, 41, 5), random_rgb(25, 33, 6, np.uint16)
  Image.fromarray(rgb8).save(photos / "a.png")
  write_png16(str(photos / "b16.png"), rgb16)
  Image.fromarray(random_rgb(20, 24, 7)[..., 0]).save(photos / "gray.jpg", quality=95)
  rgba = np.dstack([random_rgb(22, 18, 8), np.arange(22 * 18, dtype=np.uint8).reshape(22, 18)])
  Image.fromarray(rgba, "RGBA").save(photos / "sub" / "alpha.png")
  tifffile.imwrite(photos / "sub" / "c16.tif", random_rgb(19, 23, 9, np.uint16))
  Image.fromarray(random_rgb(21, 17, 10)).save(photos / "d.webp", quality=90)
  exif = Image.Exif()
  exif[274] = 6  # stored sideways: shown rotated 90 degrees
  Image.fromarray(random_rgb(16, 28, 11)).save(photos / "turned.jpg", exif=exif, quality=95)
  (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  (photos / "notes.txt").write_text("not an image: ignored")
  big = tmp_path / "big.png"  # 4K, in tiles
  Image.fromarray(np.tile(random_rgb(270, 480, 12), (8, 8, 1))).save(big)
  out = tmp_path / "out"

  proc = _derain([f"--checkpoint={source}", photos, big, f"--output_dir={out}", "--tile=512"])
  assert proc.returncode == 1, proc.stderr  # one file failed ...
  assert "FAILED" in proc.stderr and "broken.png" in proc.stderr
  assert "derained 8 of 9" in proc.stdout and "images/s" in proc.stdout
  written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
  assert written == [
    "a.png",
    "b16.png",
    "big.png",
    "d.webp",
    "gray.jpg",
    "sub/alpha.png",
    "sub/c16.tif",
    "turned.jpg",
  ]  # ... and the rest went on
  # Lossless outputs equal the library's; bit depth, grayness and alpha are kept.
  np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), derainer(rgb8))
  b16 = image_io.read_photo(str(out / "b16.png"))
  assert b16.rgb.dtype == np.uint16
  np.testing.assert_array_equal(b16.rgb, derainer(rgb16))
  assert image_io.read_photo(str(out / "sub" / "c16.tif")).rgb.dtype == np.uint16
  assert Image.open(out / "gray.jpg").mode == "L"
  alpha = image_io.read_photo(str(out / "sub" / "alpha.png"))
  np.testing.assert_array_equal(alpha.alpha, rgba[..., 3])
  assert Image.open(out / "turned.jpg").size == (16, 28)  # upright: 16 wide, 28 high
  # The 4K photo in 512 tiles equals the whole image derained at once (uint8 rounding).
  whole = derainer(np.asarray(Image.open(big)))
  tiled = np.asarray(Image.open(out / "big.png"))
  assert tiled.shape == (2160, 3840, 3)
  assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_cli_never_overwrites_inputs_and_reports_bad_arguments(checkpoint, tmp_path):
  source, _ = checkpoint
  photos = tmp_path / "photos"
  photos.mkdir()
  Image.fromarray(random_rgb(12, 12, 13)).save(photos / "a.png")
  before = (photos / "a.png").read_bytes()
  proc = _derain([f"--checkpoint={source}", photos, f"--output_dir={photos}"])
  assert proc.returncode == 1 and "would overwrite an input" in proc.stderr
  assert (photos / "a.png").read_bytes() == before and os.listdir(photos) == ["a.png"]
  other = tmp_path / "other"
  other.mkdir()
  shutil.copy(photos / "a.png", other / "a.png")
  proc = _derain(
    [
      f"--checkpoint={source}",
      photos / "a.png",
      other / "a.png",
      tmp_path / "missing.png",
      str(tmp_path / "*.nothing"),
      f"--output_dir={tmp_path / 'out'}",
    ]
  )
  assert proc.returncode == 1
  assert "same output name" in proc.stderr and "does not exist" in proc.stderr
  assert "matches no file" in proc.stderr
  assert os.listdir(tmp_path / "out") == ["a.png"]
  proc = _derain(
    [f"--checkpoint={tmp_path / 'nowhere'}", photos / "a.png", f"--output_dir={tmp_path / 'out2'}"]
  )
  assert proc.returncode == 1 and "does not exist" in proc.stderr
  assert proc.stderr.strip().count("\n") == 0  # one line
  proc = _derain([photos / "a.png"])
  assert proc.returncode == 2 and "--output_dir" in proc.stderr


def test_compilation_cache_keeps_the_programs_for_the_next_run(checkpoint, tmp_path):
  """--compilation_cache=DIR: the first run writes its compiled programs there (one per
  image-size bucket), a second run with the same sizes compiles nothing new."""
  source, derainer = checkpoint
  Image.fromarray(random_rgb(30, 41, 5)).save(tmp_path / "a.png")
  cache = tmp_path / "cache"
  proc = _derain(
    [
      f"--checkpoint={source}",
      tmp_path / "a.png",
      f"--output_dir={tmp_path / 'o1'}",
      f"--compilation_cache={cache}",
    ]
  )
  assert proc.returncode == 0, proc.stderr
  entries = sorted(os.listdir(cache))
  assert entries
  proc = _derain(
    [
      f"--checkpoint={source}",
      tmp_path / "a.png",
      f"--output_dir={tmp_path / 'o2'}",
      f"--compilation_cache={cache}",
    ]
  )
  assert proc.returncode == 0, proc.stderr
  assert sorted(os.listdir(cache)) == entries
  np.testing.assert_array_equal(
    np.asarray(Image.open(tmp_path / "o2" / "a.png")), derainer(random_rgb(30, 41, 5))
  )


def test_a_read_only_or_full_output_folder_is_one_line(checkpoint, tmp_path, tmpfs):
  source, _ = checkpoint
  Image.fromarray(random_rgb(40, 40, 14)).save(tmp_path / "a.png")
  Image.fromarray(random_rgb(40, 40, 15)).save(tmp_path / "b.png")
  disk = tmpfs(1 << 20)
  remount(disk, "ro")
  proc = _derain([f"--checkpoint={source}", tmp_path / "a.png", f"--output_dir={disk}/out"])
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert f"error: --output_dir={disk}/out is not writable (Read-only file system)" in proc.stderr
  remount(disk, "rw,size=16k")  # room for the probe and one derained PNG, not two
  filler = os.path.join(disk, "filler")
  with open(filler, "wb") as f:
    f.write(b"\1" * (4 << 10))
  Image.fromarray(random_rgb(1, 1, 16)).save(os.path.join(disk, "b.png"))  # an earlier run's
  earlier = open(os.path.join(disk, "b.png"), "rb").read()
  proc = _derain(
    [f"--checkpoint={source}", tmp_path / "a.png", tmp_path / "b.png", f"--output_dir={disk}"]
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
  # a.png fits (two pages), b.png does not: the run stops there in one line.
  assert f"error: no space left in {disk} while writing {disk}/b.png; 1 written" in proc.stderr
  assert sorted(os.listdir(disk)) == ["a.png", "b.png", "filler"]  # no temporary file left
  assert open(os.path.join(disk, "b.png"), "rb").read() == earlier  # an earlier output stays


def test_an_option_spelt_with_hyphens_is_one_line_naming_the_right_one(capsys):
  assert derain_command.run(["photo.jpg", "--output-dir=out"]) == 2
  assert capsys.readouterr().err.strip().splitlines() == [
    "error: unknown option --output-dir: the options are spelt with underscores, --output_dir"
  ]
  assert derain_command.run(["photo.jpg", "--tile-batch", "2", "--output_dir=out"]) == 2
  assert "--tile_batch" in capsys.readouterr().err
