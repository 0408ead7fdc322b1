"""Input pipeline vs train step: batches per second, side by side in one run.

  python benchmarks/input_pipeline.py [--pairs=60] [--repeats=5]

The grain pipeline alone against the jitted train step for the same batch shapes, and
their ratio, which must be at least 3. The manual: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from configs import default  # noqa: E402
from nasnet_jax.data import photos, pipeline  # noqa: E402

PHOTOS = photos.TRAIN_PHOTOS + photos.TEST_PHOTOS


def write_fake_rain100h(root: str, pairs: int) -> None:
  folder = os.path.join(root, "train", "RainTrainH")
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for n in range(1, pairs + 1):
    photo = photos.load_photo(PHOTOS[n % len(PHOTOS)])
    h, w = photo.shape[:2]
    top, left = rng.integers(0, max(1, h - 321)), rng.integers(0, max(1, w - 481))
    clean = np.asarray(
      Image.fromarray(photo[top : top + 321, left : left + 481]).resize((481, 321))
    )
    rainy = np.clip(
      clean.astype(int) + (rng.random(clean.shape[:2]) < 0.02)[..., None] * 120, 0, 255
    ).astype(np.uint8)
    Image.fromarray(clean).save(os.path.join(folder, f"norain-{n}.png"))
    Image.fromarray(rainy).save(os.path.join(folder, f"rain-{n}.png"))


def time_pipeline(source, batch: int, crop: int, threads: int, batches: int) -> float:
  """Seconds per batch of a fresh iterator, after 5 warm-up batches."""
  ds = pipeline.train_dataset(
    source, crop_size=crop, global_batch_size=batch, seed=0, process_index=0, process_count=1
  )
  it = pipeline.train_iterator(ds, num_threads=threads, prefetch=4)
  for _ in range(5):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return (time.perf_counter() - start) / batches


def time_train_step(model_overrides: dict, batch: int, crop: int, repeats: int) -> list[float]:
  """Seconds per jitted train step on a constant batch, ``repeats`` times (compiled first)."""
  config = default.get_config()
  for k, v in model_overrides.items():
    config.model[k] = v
  config.batch_size, config.data.crop_size = batch, crop
  rng = np.random.default_rng(0)
  trainer = harness.JaxTrainer(
    config, {k: rng.integers(0, 255, (batch, crop, crop, 3), np.uint8) for k in ("rainy", "clean")}
  )
  return harness.timed(trainer.step, repeats, memory=None).times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", type=int, default=60)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--threads", type=int, default=default.get_config().data.num_threads)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    write_fake_rain100h(os.path.join(tmp, "manual"), args.pairs)
    source = pipeline.get_data_source(
      "rain100h", "train", os.path.join(tmp, "tfds"), os.path.join(tmp, "manual")
    )
    print(
      f"{harness.cpu_name()}, "
      f"jax {jax.__version__} on {jax.devices()[0].platform}; {len(source)} pairs of "
      f"481x321; grain threads {args.threads}; medians of {args.repeats}"
    )
    settings = (
      ("paper: NASNet 3x18x64, batch 2, crop 240", {}, 2, 240),
      ("demo: NASNet 1x4x32, batch 4, crop 96", {"stages": 1, "blocks": 4, "features": 32}, 4, 96),
      ("demo: NASNet 1x4x32, batch 4, crop 64", {"stages": 1, "blocks": 4, "features": 32}, 4, 64),
    )
    print(f"{'setting':<44} {'pipeline batch/s':>16} {'step batch/s':>13} {'ratio':>7}", flush=True)
    for name, model, batch, crop in settings:
      pipe = statistics.median(
        time_pipeline(source, batch, crop, args.threads, 40) for _ in range(args.repeats)
      )
      train = statistics.median(time_train_step(model, batch, crop, args.repeats))
      print(f"{name:<44} {1 / pipe:16.1f} {1 / train:13.3g} {train / pipe:7.1f}", flush=True)


if __name__ == "__main__":
  main()
