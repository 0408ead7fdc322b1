"""Writes the README's before/after strips: rainy | derained | clean, one PNG per rain kind.

    python docs/make_examples.py                          # the shipped general model
    python docs/make_examples.py --checkpoint=workdirs/synthetic --output_dir=/tmp/strips

Each strip is a 256x256 crop of a held-out photo (never trained on) with rain of one kind
at a medium strength: the training renderer's streak, drop and mist, the held-out
renderer's four kinds, and no rain at all (the clean photo must come back unchanged). It
prints the crop's y8 PSNR of the input and of the output.
"""

import argparse
import os

import jax
import numpy as np

import nasnet_jax
from nasnet_jax import image_io, metrics
from nasnet_jax.data import heldout_rain, photos, synthetic_rain

# (file name, photo, top, left, how the rain is made, strength)
STRIPS = (
  ("streak", "flower", 60, 120, "streak", 0.5),
  ("drop", "chelsea", 20, 60, "drop", 0.5),
  ("mist", "coffee", 40, 150, "mist", 0.5),
  ("heldout_thin_streaks", "grace_hopper", 40, 120, "thin_streaks", 0.65),
  ("heldout_heavy_streaks", "flower", 120, 300, "heavy_streaks", 0.65),
  ("heldout_mist", "chelsea", 20, 160, "mist", 0.65),
  ("heldout_drops", "coffee", 100, 250, "drops", 0.65),
  ("clean", "grace_hopper", 300, 150, None, 0.0),
)
SIZE = 256


def render(kind: str, rain: str | None, clean: np.ndarray, strength: float) -> np.ndarray:
  if rain is None:
    return clean
  if kind.startswith("heldout_"):
    out = heldout_rain.add_heldout_rain(clean, rain, seed=7, level=strength)
  else:
    out = np.asarray(synthetic_rain.add_rain(jax.random.key(7), clean / 255.0, rain, strength))
  return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
  parser.add_argument("--output_dir", default=os.path.join(os.path.dirname(__file__), "images"))
  args = parser.parse_args()
  model, params = (
    nasnet_jax.restore(args.checkpoint) if args.checkpoint else nasnet_jax.pretrained()
  )
  derainer = nasnet_jax.Derainer(model, params)
  for kind, photo, top, left, rain, strength in STRIPS:
    clean = photos.load_photo(photo)[top : top + SIZE, left : left + SIZE]
    rainy = render(kind, rain, clean, strength)
    derained = derainer(rainy)
    gap = np.full((SIZE, 4, 3), 255, np.uint8)
    image_io.write_png(
      os.path.join(args.output_dir, f"{kind}.png"),
      np.concatenate([rainy, gap, derained, gap, clean], axis=1),
    )
    before = metrics.psnr(rainy, clean)
    print(
      f"{kind:<22} {photo:<13} input {before:6.2f} dB  output "
      f"{metrics.psnr(derained, clean):6.2f} dB"
    )


if __name__ == "__main__":
  main()
