"""Tiny fake copies of the public datasets, in each documented layout, traps included.

Every function writes a tree under ``root`` and returns what a correct builder must find:
``{split: sorted ids}`` and ``{split: number of skipped inputs}``. Images are small
(32x24 by default) and the clean one is the rainy one minus a pattern, so pairing can be
checked from pixel values: ``clean_for(rainy)`` recomputes the clean image.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
from PIL import Image

H, W = 24, 32


def _seed(key: str) -> int:
  return zlib.crc32(key.encode())


def clean_image(key: str, h: int = H, w: int = W) -> np.ndarray:
  """A deterministic uint8 (h, w, 3) image for ``key`` (values 0-199)."""
  return np.random.default_rng(_seed(key)).integers(0, 200, (h, w, 3), dtype=np.uint8)


def rainy_image(clean: np.ndarray) -> np.ndarray:
  """The clean image with bright vertical "streaks" (+50 on every 3rd column)."""
  out = clean.copy()
  out[:, ::3] += 50
  return out


def clean_for(rainy: np.ndarray) -> np.ndarray:
  out = rainy.copy()
  out[:, ::3] -= 50
  return out


def _save(path: str, image: np.ndarray, mode: str = "RGB") -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if mode == "I;16":  # 16-bit grayscale of the image's first channel
    Image.fromarray(image[..., 0].astype(np.uint16) * 257).save(path)
  elif mode == "L":
    Image.fromarray(image[..., 0]).save(path)
  elif mode == "RGBA":
    Image.fromarray(
      np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1), "RGBA"
    ).save(path)
  elif path.lower().endswith((".jpg", ".jpeg")):
    Image.fromarray(image).save(path, quality=100, subsampling=0)
  else:
    Image.fromarray(image).save(path)


def write_pair(
  rainy_path: str, clean_path: str, key: str, mode: str = "RGB", size: tuple[int, int] = (H, W)
) -> None:
  clean = clean_image(key, *size)
  if mode in ("L", "I;16"):  # gray pairs: the same value in all channels
    clean = np.repeat(clean[..., :1], 3, axis=-1)
  _save(clean_path, clean, mode)
  _save(rainy_path, rainy_image(clean), mode)


def _touch_garbage(path: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"this is not a png")


def rain100_prenet(root: str, variant: str = "H"):
  """PReNet layout with rainstreak-/rainregion- decoys, a missing partner, a 16-bit PNG."""
  train = os.path.join(root, "train", f"RainTrain{variant}")
  for n in (1, 2, 10):
    write_pair(f"{train}/rain-{n}.png", f"{train}/norain-{n}.png", f"{variant}tr{n}")
  _save(f"{train}/rainstreak-1.png", clean_image("s"))  # not inputs: never listed
  _save(f"{train}/rainregion-1.png", clean_image("r"))
  _save(f"{train}/rain-7.png", clean_image("lonely"))  # no norain-7.png
  test = os.path.join(root, "test", f"Rain100{variant}")
  write_pair(f"{test}/rainy/rain-001.png", f"{test}/norain-001.png", f"{variant}te1")
  write_pair(f"{test}/rainy/rain-002.png", f"{test}/norain-002.png", f"{variant}te2", mode="I;16")
  prefix_train = f"train/RainTrain{variant}"
  prefix_test = f"test/Rain100{variant}/rainy"
  return (
    {
      "train": [f"{prefix_train}/rain-{n}.png" for n in (1, 2, 10)],
      "test": [f"{prefix_test}/rain-001.png", f"{prefix_test}/rain-002.png"],
    },
    {"train": 1, "test": 0},
  )


def rain200(root: str, variant: str = "H"):
  """Rain200 layout: train with rain/X2/, test without X2/; a size mismatch in test."""
  word = "Heavy" if variant == "H" else "Light"
  tr = os.path.join(root, f"rain_data_train_{word}")
  te = os.path.join(root, f"rain_{word.lower()}_test")
  for n in (1, 2):
    write_pair(f"{tr}/rain/X2/norain-{n}x2.png", f"{tr}/norain/norain-{n}.png", f"a{n}")
  write_pair(f"{te}/rain/norain-1x2.png", f"{te}/norain/norain-1.png", "b1")
  write_pair(f"{te}/rain/norain-2x2.png", f"{te}/norain/norain-2.png", "b2")
  _save(f"{te}/norain/norain-2.png", clean_image("b2", H + 2, W))  # now mismatched
  return (
    {
      "train": [f"rain_data_train_{word}/rain/X2/norain-{n}x2.png" for n in (1, 2)],
      "test": [f"rain_{word.lower()}_test/rain/norain-1x2.png"],
    },
    {"train": 0, "test": 1},
  )


def rain200_jordere(root: str):
  """JORDER-E's copy: data/{train,test}/small/{rain,norain}/norain-N.png, same names."""
  for split in ("train", "test"):
    base = os.path.join(root, "data", split, "small")
    for n in (1, 2):
      write_pair(f"{base}/rain/norain-{n}.png", f"{base}/norain/norain-{n}.png", f"j{split}{n}")
  return (
    {s: [f"data/{s}/small/rain/norain-{n}.png" for n in (1, 2)] for s in ("train", "test")},
    {"train": 0, "test": 0},
  )


def spa_data(root: str):
  """SPA-Data with a directory listed in real_world.txt, a missing file, an unreadable one."""
  lines = []
  ids = []
  for video, frame, (x, y) in ((0, 1, (0, 0)), (0, 2, (0, 0)), (1, 1, (0, 1))):
    rain = f"/real_world/{video:03d}/{video:03d}-{frame}/{video:03d}-{frame}_{x}_{y}.png"
    gt = f"/real_world_gt/{video:03d}/{video:03d}_{x}_{y}.png"
    write_pair(root + rain, root + gt, f"spa{video}{x}{y}")
    lines.append(f"{rain} {gt}")
    ids.append(rain[1:])
  os.makedirs(f"{root}/real_world/274/274-14", exist_ok=True)  # the known bad line
  lines.append("/real_world/274/274-14 /real_world_gt/274/274_0_0.png")
  lines.append("/real_world/999/999-1/999-1_0_0.png /real_world_gt/999/999_0_0.png")
  _touch_garbage(f"{root}/real_world/005/005-1/005-1_0_0.png")
  write_pair(f"{root}/unused.png", f"{root}/real_world_gt/005/005_0_0.png", "g5")
  lines.append("/real_world/005/005-1/005-1_0_0.png /real_world_gt/005/005_0_0.png")
  with open(f"{root}/real_world.txt", "w") as f:
    f.write("\n".join(lines) + "\n")
  for n in range(3):
    write_pair(
      f"{root}/real_test_1000/rain/{n:03d}.png",
      f"{root}/real_test_1000/gt/{n:03d}gt.png",
      f"spt{n}",
    )
  return (
    {"train": sorted(ids), "test": [f"real_test_1000/rain/{n:03d}.png" for n in range(3)]},
    {"train": 3, "test": 0},
  )


def _cityscapes_name(city: str, n: int, pattern: int) -> tuple[str, str]:
  base = f"{city}_000000_{n:06d}_leftImg8bit"
  return f"{base}_rain_alpha_0.01_beta_0.005_dropsize_0.01_pattern_{pattern}.png", f"{base}.png"


def cityscapes_official(root: str):
  """leftImg8bit_rain + leftImg8bit; a city outside the paper's split; a missing gt."""
  ids = {"train": [], "test": []}
  for split, folder, city in (
    ("train", "train", "aachen"),
    ("train", "train", "weimar"),
    ("test", "val", "lindau"),
    (None, "val", "frankfurt"),
  ):
    for pattern in (1, 2):
      rain, clean = _cityscapes_name(city, 19, pattern)
      write_pair(
        f"{root}/leftImg8bit_rain/{folder}/{city}/{rain}",
        f"{root}/leftImg8bit/{folder}/{city}/{clean}",
        f"{city}19",
      )
      if split:
        ids[split].append(f"leftImg8bit_rain/{folder}/{city}/{rain}")
  rain, _ = _cityscapes_name("lindau", 20, 1)
  _save(f"{root}/leftImg8bit_rain/val/lindau/{rain}", clean_image("x"))  # no ground truth
  return {s: sorted(v) for s, v in ids.items()}, {"train": 0, "test": 1}


def cityscapes_dafnet(root: str):
  """train/, test/ and image/; DAF-Net's copy drops "_leftImg8bit" from the rainy names
  (train here) but keeps it on the ground truth."""
  base = os.path.join(root, "RainCityscapes")
  ids = {"train": [], "test": []}
  for split, city in (("train", "bremen"), ("test", "munster")):
    for pattern in (3, 4):
      rain, clean = _cityscapes_name(city, 7, pattern)
      if split == "train":
        rain = rain.replace("_leftImg8bit_rain_", "_rain_")
      write_pair(f"{base}/{split}/{rain}", f"{base}/image/{clean}", f"{city}7")
      ids[split].append(f"{split}/{rain}")
  return ids, {"train": 0, "test": 0}


def mpid(root: str, task: str):
  """MPID/<task>/{train,test}/{data,gt}; mist pairs by whole stem, drop uses gt/<id>.png."""
  base = os.path.join(root, "MPID", task)
  ids = {"train": [], "test": []}
  for split in ("train", "test"):
    for n in (1, 2):
      if task == "mist":
        rain, clean = f"im_{n:04d}_s90_a06.png", f"im_{n:04d}_s90_a06.png"
      elif task == "drop":
        rain, clean = f"{n}_rain.png", f"{n}.png"
      else:
        rain, clean = f"{n}_rain.jpg", f"{n}_clean.jpg"
      write_pair(f"{base}/{split}/data/{rain}", f"{base}/{split}/gt/{clean}", f"{task}{split}{n}")
      ids[split].append(f"{task}/{split}/data/{rain}")
  with open(f"{base}/train/data/notes.txt", "w") as f:  # not an image: reported
    f.write("hello")
  return ids, {"train": 1, "test": 0}


def raindrop(root: str):
  """train, test_a, test_b (JPEG); grayscale and RGBA inputs; an unreadable ground truth;
  a test_a pair that is a copy of a train pair (``RAINDROP_OVERLAP``)."""
  ids = {"train": [], "test_a": [], "test_b": []}
  for n, mode in ((0, "RGB"), (1, "L"), (2, "RGBA")):
    write_pair(
      f"{root}/train/data/{n}_rain.png", f"{root}/train/gt/{n}_clean.png", f"rd{n}", mode=mode
    )
    ids["train"].append(f"train/data/{n}_rain.png")
  write_pair(f"{root}/test_a/data/0_rain.png", f"{root}/test_a/gt/0_clean.png", "ta0")
  ids["test_a"].append("test_a/data/0_rain.png")
  write_pair(f"{root}/test_a/data/1_rain.png", f"{root}/test_a/gt/1_clean.png", "ta1")
  _touch_garbage(f"{root}/test_a/gt/1_clean.png")
  # The pair of train/data/0_rain.png again: an overlap the build must report.
  write_pair(f"{root}/test_a/data/2_rain.png", f"{root}/test_a/gt/2_clean.png", "rd0")
  ids["test_a"].append("test_a/data/2_rain.png")
  for n in (3, 4):
    write_pair(f"{root}/test_b/data/{n}_rain.jpg", f"{root}/test_b/gt/{n}_clean.jpg", f"tb{n}")
    ids["test_b"].append(f"test_b/data/{n}_rain.jpg")
  return ids, {"train": 0, "test_a": 1, "test_b": 0}


# What the overlap check must find in ``raindrop``'s tree: (split, id, split, id, match).
RAINDROP_OVERLAP = [("test_a", "test_a/data/2_rain.png", "train", "train/data/0_rain.png", "exact")]


def paired_folders(root: str):
  """Restormer-style Datasets/{train/Rain13K,test/Test100}/{input,target} and DDN folders."""
  ids = {"Rain13K": [], "Test100": [], "Rain1400": []}
  for split, folder in (
    ("Rain13K", "Datasets/train/Rain13K"),
    ("Test100", "Datasets/test/Test100"),
  ):
    for n in (1, 2):
      write_pair(f"{root}/{folder}/input/{n}.png", f"{root}/{folder}/target/{n}.png", f"{split}{n}")
      ids[split].append(f"{folder}/input/{n}.png")
  _save(f"{root}/Datasets/test/Test100/input/3.png", clean_image("t3"))  # no target
  for i in (901, 902):
    _save(f"{root}/Rain1400/ground_truth/{i}.jpg", clean_image(f"d{i}"))
    for j in (1, 2):
      _save(f"{root}/Rain1400/rainy_image/{i}_{j}.jpg", rainy_image(clean_image(f"d{i}")))
      ids["Rain1400"].append(f"Rain1400/rainy_image/{i}_{j}.jpg")
  return ids, {"Rain13K": 0, "Test100": 1, "Rain1400": 0}
