"""How long a dataset build takes: pairs of 256x256 PNG crops, built fresh several times.

  python benchmarks/build_speed.py                 # 300 train + 100 test pairs, 3 builds

The build with and without the overlap check, and the overlap search alone at SPA-Data's
size; prints medians. The manual: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from unittest import mock

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow_datasets as tfds  # noqa: E402  pylint: disable=g-import-not-at-top

from benchmarks import harness  # noqa: E402
from nasnet_jax.data import build_cache, overlap, photos, pipeline  # noqa: E402


def write_pairs(root: str, train: int, test: int, size: int = 256) -> None:
  rng = np.random.default_rng(0)
  sources = [photos.load_photo(n) for n in photos.PHOTO_FILES]
  for split, count in (("train", train), ("test", test)):
    for folder in ("input", "target"):
      os.makedirs(os.path.join(root, split, folder), exist_ok=True)
    for i in range(count):
      photo = sources[i % len(sources)]
      top = rng.integers(0, photo.shape[0] - size)
      left = rng.integers(0, photo.shape[1] - size)
      clean = photo[top : top + size, left : left + size]
      speckles = (rng.random((size, size, 1)) < 0.02) * 80
      rainy = np.clip(clean.astype(int) + speckles, 0, 255).astype(np.uint8)
      Image.fromarray(clean).save(os.path.join(root, split, "target", f"{i}.png"))
      Image.fromarray(rainy).save(os.path.join(root, split, "input", f"{i}.png"))


def time_builds(manual_dir: str, tmp: str, repeats: int, tag: str) -> list[float]:
  times = []
  for r in range(repeats):
    builder = pipeline.get_builder(
      "paired_folders/build_speed", os.path.join(tmp, f"tfds_{tag}_{r}")
    )
    start = time.perf_counter()
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    times.append(time.perf_counter() - start)
  return times


def time_overlap_search(train: int, test: int) -> float:
  """Seconds ``OverlapFinder.matches`` takes for ``train`` + ``test`` random fingerprints
  (SPA-Data's sizes by default: every clean image distinct, one test copy of a train one)."""
  rng = np.random.default_rng(0)
  finder = overlap.OverlapFinder()
  hashes = rng.integers(0, 2**63, train + test, dtype=np.int64)
  for i in range(train):
    finder.add("train", f"train/{i}.png", (f"{i:064x}", int(hashes[i])))
  for i in range(test):
    finder.add("test", f"test/{i}.png", (f"t{i:063x}", int(hashes[train + i])))
  finder.add("test", "test/copy.png", (f"{0:064x}", int(hashes[0])))
  start = time.perf_counter()
  matches = finder.matches()
  seconds = time.perf_counter() - start
  assert [(m.id_a, m.id_b, m.kind) for m in matches] == [
    ("test/copy.png", "train/0.png", "exact")
  ], matches
  return seconds


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--train", type=int, default=300)
  parser.add_argument("--test", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument(
    "--search_train",
    type=int,
    default=638_492,
    help="fingerprints of the overlap search timed alone (SPA-Data's)",
  )
  parser.add_argument("--search_test", type=int, default=1000)
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    manual_dir = os.path.join(tmp, "manual")
    write_pairs(manual_dir, args.train, args.test)
    print(
      f"{harness.cpu_name()}, {build_cache.default_num_threads()} conversion "
      f"threads; {args.train} + "
      f"{args.test} pairs of 256x256 PNG; medians of {args.repeats} fresh builds"
    )
    full = time_builds(manual_dir, tmp, args.repeats, "full")
    rng = np.random.default_rng(1)  # random hashes: as many near matches as real ones
    random_print = lambda image: ("-", int(rng.integers(0, 2**63)))
    with mock.patch.object(overlap, "fingerprint", random_print):
      bare = time_builds(manual_dir, tmp, args.repeats, "bare")
    print(f"build with the overlap check  {statistics.median(full):6.2f} s")
    print(f"build without it              {statistics.median(bare):6.2f} s")
  seconds = time_overlap_search(args.search_train, args.search_test)
  print(
    f"overlap search alone, {args.search_train:,} train + {args.search_test:,} test "
    f"fingerprints  {seconds:6.2f} s"
  )


if __name__ == "__main__":
  main()
