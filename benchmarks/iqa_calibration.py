"""NIQE and BRISQUE against the authors' MATLAB values on IQA-PyTorch's calibration images,
and how far BRISQUE moves with the filter's rounding on flat windows.

  # chaofengc/IQA-PyTorch: ResultsCalibra/dist_dir/*.bmp and results_official.csv
  python benchmarks/iqa_calibration.py --images=ResultsCalibra/dist_dir \
      --official=ResultsCalibra/results_official.csv [--variants=20]

Prints a markdown table: per image, ours, MATLAB's and the difference for both scores,
and the share of pixels whose 7x7 window holds one grey level. With ``--variants=N`` also
BRISQUE − MATLAB per image with the flat windows' coefficients set to the exact 0, with
the factors ``filter2`` would take from the window by numpy's SVD, and the range over N
random factors that differ from ours in their last bits and still add up to 1.0: how
much of the difference is the filter's rounding.
The images are not redistributable: measure with them, do not commit them.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
from collections.abc import Sequence
from unittest import mock

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from nasnet_jax import image_io  # noqa: E402
from nasnet_jax import no_reference as nr  # noqa: E402

FILTER, MSCN = nr.gaussian_filter, nr.mscn  # the shipped steps, before any patching


def read_official(path: str) -> dict[str, dict[str, float]]:
  """{"niqe": {image stem: value}, "brisque": {...}} from results_official.csv (rows are
  methods, the first column their name, the header the image file names)."""
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  names = [os.path.splitext(name)[0] for name in rows[0][1:]]
  table = {row[0]: dict(zip(names, map(float, row[1:]))) for row in rows[1:] if row}
  missing = {"niqe", "brisque"} - set(table)
  if missing:
    raise ValueError(f"{path} has no row {sorted(missing)}: expected results_official.csv")
  return {key: table[key] for key in ("niqe", "brisque")}


def flat_share(gray: np.ndarray) -> float:
  """The share of pixels whose 7x7 window (zeros outside) holds one grey level."""
  span = ndimage.maximum_filter(gray, 7, mode="constant") - ndimage.minimum_filter(
    gray, 7, mode="constant"
  )
  return float(np.mean(span == 0))


def exact_zero_mscn(image: np.ndarray, padding: str) -> np.ndarray:
  """``nr.mscn`` with the coefficients of flat windows set to the exact 0."""
  mode = {"replicate": "nearest", "zero": "constant"}[padding]
  coefficients = MSCN(image, padding)
  span = ndimage.maximum_filter(image, 7, mode=mode) - ndimage.minimum_filter(image, 7, mode=mode)
  coefficients[span == 0] = 0.0
  return coefficients


def fspecial_window() -> np.ndarray:
  """``fspecial('gaussian', 7, 7/6)`` built as MATLAB builds it (the 2-D exponential over
  its sum), divided by its sum again as the BRISQUE release does: (7, 7)."""
  x = np.arange(-3.0, 4.0)
  window = np.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2 * (7 / 6) * (7 / 6)))
  window /= window.sum()
  return window / window.sum()


def svd_factors() -> tuple[np.ndarray, np.ndarray]:
  """filter2's split of that window: ``[u,s,v] = svd(rot90(window, 2))``, then
  u(:,1) sqrt(s(1)) and v(:,1) sqrt(s(1)), with numpy's SVD for MATLAB's."""
  u, s, vt = np.linalg.svd(np.rot90(fspecial_window(), 2))
  return u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])


def factors_adding_to_one(rng: np.random.Generator) -> np.ndarray:
  """Our factor with each tap moved by up to 2 units in its last place, its sum (left to
  right) still 1.0."""
  factor = nr.gaussian_factor()
  while True:
    moved = factor + rng.integers(-2, 3, factor.size) * np.spacing(factor)
    if sum(moved) == 1.0 and not np.array_equal(moved, factor):
      return moved


def brisque_with_factors(gray: np.ndarray, factors: tuple[np.ndarray, np.ndarray]) -> float:
  """BRISQUE of grey levels with other filter factors (column, row)."""
  with mock.patch.object(nr, "gaussian_filter", functools.partial(FILTER, factors=factors)):
    return nr.brisque(gray.astype(np.uint8))


def brisque_with_exact_zero(gray: np.ndarray) -> float:
  """BRISQUE of grey levels with the flat windows' coefficients set to the exact 0."""
  with mock.patch.object(nr, "mscn", exact_zero_mscn):
    return nr.brisque(gray.astype(np.uint8))


def calibrate(images: str, official: str, variants: int = 0, seed: int = 0) -> list[dict]:
  """One row per image of ``official`` found in ``images`` (``<stem>.bmp`` or any image)."""
  reference = read_official(official)
  files = {os.path.splitext(n)[0]: os.path.join(images, n) for n in sorted(os.listdir(images))}
  missing = sorted(set(reference["niqe"]) - set(files))
  if missing:
    raise FileNotFoundError(f"{images} lacks {missing}: pass ResultsCalibra/dist_dir")
  rng = np.random.default_rng(seed)
  random_factors = [factors_adding_to_one(rng) for _ in range(variants)]
  rows = []
  for stem in reference["niqe"]:
    image = image_io.read_image(files[stem])
    gray = nr.gray_levels(image)
    row = {
      "image": stem,
      "niqe": nr.niqe(image),
      "niqe_matlab": reference["niqe"][stem],
      "brisque": nr.brisque(image),
      "brisque_matlab": reference["brisque"][stem],
      "flat": flat_share(gray),
    }
    if variants:
      matlab = row["brisque_matlab"]
      row["exact_zero"] = brisque_with_exact_zero(gray) - matlab
      row["svd"] = brisque_with_factors(gray, svd_factors()) - matlab
      spread = [brisque_with_factors(gray, (f, f)) - matlab for f in random_factors]
      row["adding_to_one"] = (min(spread), max(spread))
    rows.append(row)
  return rows


def markdown(rows: Sequence[dict]) -> str:
  lines = [
    "| image | NIQE ours | MATLAB | ours − MATLAB | BRISQUE ours | MATLAB | ours − MATLAB "
    "| 7×7 windows of one grey level |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    lines.append(
      f"| {r['image']} | {r['niqe']:.4f} | {r['niqe_matlab']:.4f} | "
      f"{r['niqe'] - r['niqe_matlab']:+.4f} | {r['brisque']:.4f} | {r['brisque_matlab']:.4f} | "
      f"{r['brisque'] - r['brisque_matlab']:+.4f} | {100 * r['flat']:.1f} % |"
    )
  if rows and "svd" in rows[0]:
    lines += [
      "",
      "| image | BRISQUE − MATLAB: ours | flat windows exact 0 | numpy's SVD factors "
      "| other factors adding to 1 |",
      "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
      low, high = r["adding_to_one"]
      lines.append(
        f"| {r['image']} | {r['brisque'] - r['brisque_matlab']:+.3f} | {r['exact_zero']:+.3f} "
        f"| {r['svd']:+.3f} | {low:+.3f} to {high:+.3f} |"
      )
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--images", required=True, help="ResultsCalibra/dist_dir")
  parser.add_argument("--official", required=True, help="ResultsCalibra/results_official.csv")
  parser.add_argument("--variants", type=int, default=0, help="random factor sets (0: none)")
  args = parser.parse_args(argv)
  rows = calibrate(args.images, args.official, args.variants)
  print(harness.machine_line(harness.machine()))
  print(markdown(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
