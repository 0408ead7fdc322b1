"""A second, independent rain renderer, used only to test generalisation.

Nothing here is used in training, and it shares no code with ``synthetic_rain`` (it
imports neither it nor JAX): the point is to score a model on rain whose generator it
never saw, as a user's photo will be. It is NumPy/SciPy/Pillow, deterministic given
``seed``, and works on one float (H, W, 3) image in [0, 1]. ``level`` in (0, 1] runs from
light to heavy; at 0 the image is returned unchanged.

Its models differ from the training renderer on purpose:

* ``"thin_streaks"``: hundreds to thousands of 1 px straight lines drawn with Pillow at
  4x resolution and box-downsampled (anti-aliased), one direction within 15 degrees of
  vertical, 15-120 px long, composited by *screen* blending ``1 - (1 - B)(1 - a S)``.
* ``"heavy_streaks"``: two crossing sets of 2-4 px lines (directions 10-35 degrees
  apart), dense and bright, blurred along nothing (hard edges softened by a 0.7 px
  Gaussian), plus a flat veil lifting the image by 3-8 %.
* ``"mist"``: fog whose density follows a horizon: a logistic ramp in the row index
  around a random horizon line, modulated by a sum of random low-frequency sinusoids,
  with a flat white-to-grey airlight; transmission ``exp(-k * density)``.
* ``"drops"``: raindrops as spherical caps on the lens, each refracting a wide field of
  view behind it (a fisheye map: the offset from the centre, scaled by 1.5-3x and by
  ``1 / sqrt(1 - r^2)`` towards the rim, mirrored), radius 5-28 px, edged by a Fresnel-
  like dark rim and a bright caustic crescent on the lower side; the whole drop layer is
  defocused by a Gaussian of 0-2.5 px.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

KINDS = ("thin_streaks", "heavy_streaks", "mist", "drops")
_SUPERSAMPLE = 4


def _lines(shape, rng, count, length, angle, jitter, width_px) -> np.ndarray:
  """(H, W) float in [0, 1]: ``count`` anti-aliased straight lines, drawn supersampled."""
  h, w = shape
  s = _SUPERSAMPLE
  canvas = Image.new("L", (w * s, h * s), 0)
  draw = ImageDraw.Draw(canvas)
  for _ in range(int(count)):
    x, y = rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(-0.1 * h, 1.1 * h)
    a = angle + rng.uniform(-jitter, jitter)
    n = length * rng.uniform(0.5, 1.5)
    dx, dy = np.sin(a) * n / 2, np.cos(a) * n / 2
    value = int(255 * rng.uniform(0.5, 1.0))
    draw.line(
      [((x - dx) * s, (y - dy) * s), ((x + dx) * s, (y + dy) * s)],
      fill=value,
      width=max(1, int(round(width_px * s * rng.uniform(0.8, 1.2)))),
    )
  big = np.asarray(canvas, np.float32) / 255.0
  return big.reshape(h, s, w, s).mean(axis=(1, 3))


def _screen(image, layer, opacity):
  return 1.0 - (1.0 - image) * (1.0 - opacity * layer[..., None])


def thin_streaks(image, rng, level):
  h, w = image.shape[:2]
  count = level * rng.uniform(0.6, 1.2) * h * w / 180.0
  layer = _lines(
    (h, w),
    rng,
    count,
    length=rng.uniform(15, 120),
    jitter=0.03,
    angle=rng.uniform(-0.26, 0.26),
    width_px=1.0,
  )
  return _screen(image, layer, rng.uniform(0.5, 0.9))


def heavy_streaks(image, rng, level):
  h, w = image.shape[:2]
  first = rng.uniform(-0.4, 0.4)
  second = first + rng.choice([-1, 1]) * rng.uniform(0.17, 0.6)
  layer = np.zeros((h, w), np.float32)
  for angle in (first, second):
    count = level * rng.uniform(0.5, 1.0) * h * w / 300.0
    layer = np.maximum(
      layer,
      _lines(
        (h, w),
        rng,
        count,
        length=rng.uniform(20, 70),
        jitter=0.05,
        angle=angle,
        width_px=rng.uniform(2.0, 4.0),
      ),
    )
  layer = ndimage.gaussian_filter(layer, 0.7)
  veiled = image + level * rng.uniform(0.03, 0.08) * (1.0 - image)
  return _screen(veiled, layer, rng.uniform(0.5, 0.8))


def mist(image, rng, level):
  h, w = image.shape[:2]
  rows = np.arange(h, dtype=np.float32)[:, None] / h
  cols = np.arange(w, dtype=np.float32)[None, :] / w
  horizon = rng.uniform(0.3, 0.7)
  density = 1.0 / (1.0 + np.exp((rows - horizon) / rng.uniform(0.08, 0.25)))
  waves = sum(
    rng.uniform(0.05, 0.15)
    * np.sin(
      2 * np.pi * (rng.uniform(0.5, 2.5) * rows + rng.uniform(0.5, 2.5) * cols)
      + rng.uniform(0, 2 * np.pi)
    )
    for _ in range(3)
  )
  density = np.clip(0.3 + density + waves, 0.0, None)
  transmission = np.exp(-level * rng.uniform(0.4, 0.9) * density)[..., None]
  airlight = rng.uniform(0.75, 0.98)
  return image * transmission + airlight * (1.0 - transmission)


def drops(image, rng, level):
  h, w = image.shape[:2]
  count = int(round(level * rng.uniform(0.6, 1.0) * h * w / 900.0))
  layer = image.copy()
  alpha = np.zeros((h, w), np.float32)
  channels = [image[..., c] for c in range(3)]
  for _ in range(count):
    radius = rng.uniform(5.0, 28.0) if rng.uniform() < 0.3 else rng.uniform(5.0, 12.0)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    y0, y1 = int(max(cy - radius - 1, 0)), int(min(cy + radius + 2, h))
    x0, x1 = int(max(cx - radius - 1, 0)), int(min(cx + radius + 2, w))
    if y1 <= y0 or x1 <= x0:
      continue
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    oy, ox = (yy - cy) / radius, (xx - cx) / radius
    r = np.sqrt(oy**2 + ox**2)
    inside = r < 1.0
    bend = rng.uniform(1.5, 3.0) / np.sqrt(np.maximum(1.0 - np.minimum(r, 0.97) ** 2, 0.05))
    sy = cy - oy * radius * bend
    sx = cx - ox * radius * bend
    view = np.stack(
      [ndimage.map_coordinates(c, [sy, sx], order=1, mode="reflect") for c in channels], axis=-1
    )
    rim = np.clip((r - 0.7) / 0.3, 0.0, 1.0)
    caustic = np.exp(-((oy - 0.55) ** 2 + (ox * 0.6) ** 2) / 0.02) * rng.uniform(0.2, 0.5)
    look = np.clip(view * (1.0 - 0.55 * rim[..., None]) + caustic[..., None], 0.0, 1.0)
    cover = np.where(inside, np.clip((1.0 - r) * radius, 0.0, 1.0), 0.0)
    patch = layer[y0:y1, x0:x1]
    layer[y0:y1, x0:x1] = np.where(cover[..., None] > 0, look, patch)
    alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], cover)
  sigma = rng.uniform(0.0, 2.5)
  if sigma > 0.3:
    alpha = ndimage.gaussian_filter(alpha, sigma)
    layer = np.stack([ndimage.gaussian_filter(layer[..., c], sigma) for c in range(3)], -1)
  return image * (1.0 - alpha[..., None]) + layer * alpha[..., None]


_RENDERERS = {
  "thin_streaks": thin_streaks,
  "heavy_streaks": heavy_streaks,
  "mist": mist,
  "drops": drops,
}


def add_heldout_rain(image: np.ndarray, kind: str, seed: int, level: float) -> np.ndarray:
  """Renders held-out rain of ``kind`` over ``image``.

  Args:
    image: float (H, W, 3) in [0, 1] (uint8 is converted).
    kind: one of ``KINDS``.
    seed: the same seed, image and arguments give the same output.
    level: in [0, 1], light to heavy; 0 returns the image unchanged.

  Returns:
    float32 (H, W, 3) in [0, 1].
  """
  if kind not in _RENDERERS:
    raise ValueError(f"held-out rain kind must be one of {KINDS}, got {kind!r}")
  image = np.asarray(image)
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  image = image.astype(np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"add_heldout_rain expects one (H, W, 3) image, got {image.shape}")
  if not 0.0 <= level <= 1.0:
    raise ValueError(f"level must be in [0, 1], got {level}")
  if level == 0.0:
    return image.copy()
  rng = np.random.default_rng([seed, KINDS.index(kind)])
  return np.clip(_RENDERERS[kind](image, rng, float(level)), 0.0, 1.0).astype(np.float32)
