"""Synthetic rain in JAX: the NASNet paper's three rain models (eqs. 1-3), widened.

Every renderer is pure and jittable for a fixed image shape, deterministic given its PRNG
key, and works on one image (H, W, 3) float in [0, 1] (``jax.vmap`` for batches;
``add_rain_batch`` does). ``strength`` in [0, 1] runs from no rain at all (0: the image
is returned unchanged, bit for bit) through light rain (0.2, like Rain100L) to heavy rain
(1, like Rain100H; the input PSNR each gives is in docs/synthetic_rain.md). Below
strength 0.15 every rain type fades out linearly. Left as None it is drawn uniformly.

* ``"streak"``: ``R = B + S`` with soft saturation. One to three layers (heavier rain:
  more layers, each more likely), farther layers thinner, shorter, dimmer and denser.
  Per layer: Gaussian cross-section of 1-4 px full width; length 4-48 px; direction
  within +-0.5 rad of vertical, later layers up to +-0.35 rad off the first; ends as
  sharp as a stroke or as soft as motion blur; brightness 0.14-0.78 per seed; a slight
  tint of up to +-6 % per channel (white, bluish or warm streaks).
* ``"drop"``: ``R = (1 - M) * B + M * look``: raindrops on the lens, round to elliptic
  (aspect 0.75-1.3), radius 3-9 px (up to ~420 per 256x256) and 9-30 px (up to ~16).
  Each image has a focus in [0, 1]: sharp drops have a ~1 px edge and opacity up to
  0.95; out-of-focus drops have soft edges (up to 45 % of the radius) and opacity down
  to 0.45. A drop is a small water lens: ``look`` is a flipped, shrunken (0.25-0.6x),
  blurred (sigma 1-4 px) view of the scene around it, brightened, with a darker rim
  (20-60 % darker) and a specular highlight (0.1-0.45).
* ``"mist"``: ``R = B * t + A * (1 - t) (+ S)``: transmission ``t = exp(-beta * d)``
  with ``beta`` up to 0.7 (0 at strength 0, so ``t = 1``) over a smooth random depth
  ``d`` that grows towards a random direction near "up" (or is nearly uniform);
  airlight ``A`` 0.6-1.0 with a tint of +-8 % per channel (grey, cool or warm haze). A
  third of mist images have no streaks, a third light streaks and a third full-range
  streaks (the streaks + mist combination of RainCityScapes).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

RAIN_TYPES = ("streak", "drop", "mist")
FADE_BELOW = 0.15  # strengths below this fade the rain out, to none at 0
_STREAK_RADIUS = 24  # streak kernels are (2r+1)^2: streaks up to ~48 px long
_MAX_STREAK_LAYERS = 3
_SMALL_DROPS = (3.0, 9.0, 800.0, 12)  # radius range, max count per 256^2, window radius
_LARGE_DROPS = (9.0, 30.0, 30.0, 39)  # window radius covers radius x aspect 1.3


def _fade(strength) -> jax.Array:
  """1 from ``FADE_BELOW`` up, falling linearly to 0 at strength 0."""
  return jnp.clip(jnp.asarray(strength, jnp.float32) / FADE_BELOW, 0.0, 1.0)


def _uniform(key, low, high, shape=()):
  return jax.random.uniform(key, shape, minval=low, maxval=high)


def _lerp(a, b, t):
  return a + (b - a) * t


def _fft_conv2d(image: jax.Array, kernel: jax.Array) -> jax.Array:
  """'same' 2-D convolution of (H, W) ``image`` with an odd (k, k) ``kernel`` via FFT.

  Zero boundary (the image is padded by the kernel radius, so nothing wraps around).
  An FFT keeps per-example kernels cheap under ``vmap``, where a batched direct
  convolution would become a grouped one.
  """
  h, w = image.shape
  k = kernel.shape[0]
  r = k // 2
  ph, pw = h + 2 * r, w + 2 * r
  fi = jnp.fft.rfft2(jnp.pad(image, r), s=(ph, pw))
  fk = jnp.fft.rfft2(kernel, s=(ph, pw))
  full = jnp.fft.irfft2(fi * fk, s=(ph, pw))
  # Linear convolution of the padded image with the kernel centred at (r, r).
  return full[2 * r : 2 * r + h, 2 * r : 2 * r + w]


def _gaussian_blur(image: jax.Array, sigma: float, radius: int) -> jax.Array:
  """Separable Gaussian blur of (H, W, C) with edge padding; sigma may be traced."""
  x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  g = jnp.exp(-0.5 * (x / sigma) ** 2)
  g = g / jnp.sum(g)
  padded = jnp.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
  h, w = image.shape[:2]
  rows = sum(g[i] * padded[i : i + h, :, :] for i in range(2 * radius + 1))
  return sum(g[i] * rows[:, i : i + w, :] for i in range(2 * radius + 1))


def streak_kernel(length, angle, width, softness=1.0, radius: int = _STREAK_RADIUS) -> jax.Array:
  """A motion-blur line kernel, peak 1, shape (2*radius+1, 2*radius+1).

  Args:
    length: streak length in pixels.
    angle: direction in radians from vertical (positive leans right at the top).
    width: Gaussian sigma across the streak, pixels (full width ~2.4x this).
    softness: how the brightness falls towards the ends: small is a sharp-ended stroke,
      large a long motion-blur fade.
  """
  r = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  yy, xx = jnp.meshgrid(r, r, indexing="ij")
  dy, dx = jnp.cos(angle), jnp.sin(angle)
  along = yy * dy + xx * dx
  across = -yy * dx + xx * dy
  half = length / 2.0
  profile = jnp.clip(1.0 - (along / jnp.maximum(half, 1.0)) ** 2, 0.0, 1.0) ** softness
  return jnp.exp(-0.5 * (across / width) ** 2) * profile


def streak_layer(key: jax.Array, shape: tuple[int, int], strength) -> jax.Array:
  """The streak layer S, (H, W) float in [0, 1) (white), for ``strength`` in [0, 1]."""
  s = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  k_angle, k_count, k_layers = jax.random.split(key, 3)
  base_angle = _uniform(k_angle, -0.5, 0.5)
  # Heavier rain is more likely to have more layers (Rain100H has several directions).
  extra = jax.random.uniform(k_count, (2,)) < jnp.stack([s, s * s])
  n_layers = 1 + jnp.sum(extra.astype(jnp.int32))
  total = jnp.zeros(shape, jnp.float32)
  for i, k in enumerate(jax.random.split(k_layers, _MAX_STREAK_LAYERS)):
    kd, kl, ka, kw, kb, kp, ki, ks = jax.random.split(k, 8)
    near = 1.0 - 0.3 * i  # later layers are farther away
    density = _lerp(0.0015, 0.0045, s) * _uniform(kd, 0.6, 1.4) * (1.0 + 0.6 * i)
    length = _lerp(8.0, 32.0, s) * _uniform(kl, 0.5, 1.5) * near
    angle = base_angle + jnp.where(i == 0, 0.0, _uniform(ka, -0.35, 0.35))
    width = (
      _uniform(kw, 0.42, 1.0) + 0.7 * s * _uniform(jax.random.fold_in(kw, 1), 0.0, 1.0)
    ) * near
    brightness = _lerp(0.2, 0.6, s) * _uniform(kb, 0.7, 1.3) * (1.0 - 0.2 * i)
    softness = _uniform(ks, 0.3, 1.5)
    points = jax.random.uniform(kp, shape) < density
    amplitude = _uniform(ki, 0.4, 1.0, shape)
    seeds = jnp.where(points, amplitude * brightness, 0.0)
    layer = _fft_conv2d(
      seeds, streak_kernel(jnp.maximum(length, 4.0), angle, jnp.maximum(width, 0.42), softness)
    )
    total = total + jnp.where(i < n_layers, jnp.maximum(layer, 0.0), 0.0)
  # Overlapping streaks saturate softly instead of summing without bound.
  return _fade(s) * (1.0 - jnp.exp(-1.3 * total))


def add_streaks(key: jax.Array, clean: jax.Array, strength) -> jax.Array:
  """Eq. 1, ``R = B + S``; clean (H, W, 3) in [0, 1] -> rainy (H, W, 3) in [0, 1]."""
  k_layer, k_tint = jax.random.split(key)
  s = streak_layer(k_layer, clean.shape[:2], strength)
  tint = 1.0 + _uniform(k_tint, -0.06, 0.06, (3,))
  return jnp.clip(clean + s[..., None] * tint, 0.0, 1.0)


def _drop_canvas(h: int, w: int, centres, ry, rx, alpha, edge, window: int):
  """Scatters elliptic drops into an (h, w) canvas, each drawn in its own
  (2*window+1)^2 box. Returns (mask, owner): per pixel the strongest drop's coverage in
  [0, 1] and that drop's index (0 where no drop covers it)."""
  p = window
  offsets = jnp.arange(-p, p + 1)
  rows = jnp.floor(centres[:, 0]).astype(jnp.int32)[:, None] + offsets  # (D, 2p+1)
  cols = jnp.floor(centres[:, 1]).astype(jnp.int32)[:, None] + offsets
  dist = jnp.sqrt(
    ((rows[:, :, None] - centres[:, 0, None, None]) / ry[:, None, None]) ** 2
    + ((cols[:, None, :] - centres[:, 1, None, None]) / rx[:, None, None]) ** 2
  )  # 1: rim
  windows = alpha[:, None, None] * jnp.clip((1.0 - dist) / edge[:, None, None], 0.0, 1.0)
  r_idx = jnp.broadcast_to(rows[:, :, None] + p, windows.shape)  # padded canvas
  c_idx = jnp.broadcast_to(cols[:, None, :] + p, windows.shape)
  canvas = (h + 2 * p, w + 2 * p)
  best = jnp.zeros(canvas).at[r_idx, c_idx].max(windows)
  ids = jnp.arange(centres.shape[0], dtype=jnp.int32)[:, None, None]
  wins = (windows > 0) & (windows >= best[r_idx, c_idx])
  owner = jnp.zeros(canvas, jnp.int32).at[r_idx, c_idx].max(jnp.where(wins, ids, 0))
  return best[p : p + h, p : p + w], owner[p : p + h, p : p + w]


def _drop_population(key, h, w, strength, focus, fade, spec):
  """Centres, radii (ry, rx), coverage and edge width of one size class of drops."""
  r_min, r_max, per_unit, _ = spec
  area = (h * w) / (256 * 256)
  max_drops = int(per_unit * area * 1.2) + 1
  kn, kc, kr, ka, ko = jax.random.split(key, 5)
  count = jnp.round(per_unit * area * strength * _uniform(kn, 0.6, 1.2))
  active = jnp.arange(max_drops) < count
  centres = jax.random.uniform(kc, (max_drops, 2)) * jnp.array([h, w], jnp.float32)
  radius = _lerp(r_min, r_max, jax.random.uniform(kr, (max_drops,)) ** 1.5)
  aspect = _uniform(ka, 0.75, 1.3, (max_drops,))
  opacity = _lerp(0.95, 0.5, focus) * _uniform(ko, 0.85, 1.0, (max_drops,))
  alpha = jnp.where(active, opacity * fade, 0.0)
  # Edge width as a fraction of the radius: ~1 px when sharp, 45 % out of focus.
  edge = jnp.maximum(_lerp(1.0 / radius, 0.45, focus), 1e-3)
  return centres, radius * aspect, radius / aspect, alpha, edge


def add_drops(key: jax.Array, clean: jax.Array, strength) -> jax.Array:
  """Eq. 2, ``R = (1 - M) * B + M * look``; (H, W, 3) in [0, 1] -> (H, W, 3) in [0, 1]."""
  h, w = clean.shape[:2]
  strength = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  k_small, k_large, kf, ks, kb, kr, kh = jax.random.split(key, 7)
  focus = jax.random.uniform(kf, ())  # 0: sharp drops, 1: out of focus
  fade = _fade(strength)
  pops = [
    _drop_population(k, h, w, strength, focus, fade, spec)
    for k, spec in ((k_small, _SMALL_DROPS), (k_large, _LARGE_DROPS))
  ]
  canvases = [
    _drop_canvas(h, w, *pop, window=spec[3])
    for pop, spec in zip(pops, (_SMALL_DROPS, _LARGE_DROPS))
  ]
  (m_small, o_small), (m_large, o_large) = canvases
  n_small = pops[0][0].shape[0]
  large_wins = m_large > m_small
  mask = jnp.where(large_wins, m_large, m_small)
  nearest = jnp.where(large_wins, o_large + n_small, o_small)
  centres, ry, rx = (jnp.concatenate([a, b]) for a, b in zip(pops[0][:3], pops[1][:3]))
  yy, xx = jnp.meshgrid(
    jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
  )
  # A drop is a small lens: it shows a flipped, shrunken, blurred view of the scene
  # around it.
  scale = _uniform(ks, 0.25, 0.6, (centres.shape[0],))[nearest]
  cy, cx = centres[nearest, 0], centres[nearest, 1]
  sy = cy - (yy - cy) * scale
  sx = cx - (xx - cx) * scale
  blurred = _gaussian_blur(clean, sigma=_lerp(1.0, 4.0, focus), radius=8)
  refracted = jnp.stack(
    [
      jax.scipy.ndimage.map_coordinates(blurred[..., c], [sy, sx], order=1, mode="nearest")
      for c in range(3)
    ],
    axis=-1,
  )
  # Water-drop look: brighter body, a darker refracting rim, a specular highlight up-left.
  rim = jnp.clip(
    jnp.sqrt(((yy - cy) / ry[nearest]) ** 2 + ((xx - cx) / rx[nearest]) ** 2), 0.0, 1.0
  )
  shade = 1.1 - _uniform(kr, 0.2, 0.6) * jnp.clip((rim - 0.65) / 0.35, 0.0, 1.0) ** 2
  hy = (yy - cy) / ry[nearest] + 0.4
  hx = (xx - cx) / rx[nearest] + 0.4
  highlight = _uniform(kh, 0.1, 0.45) * jnp.exp(-(hy**2 + hx**2) / (2 * 0.15**2))
  brighten = _uniform(kb, 0.06, 0.2)
  drop_look = jnp.clip(refracted * shade[..., None] + (brighten + highlight)[..., None], 0.0, 1.0)
  m = mask[..., None]
  return jnp.clip((1.0 - m) * clean + m * drop_look, 0.0, 1.0)


def add_mist(key: jax.Array, clean: jax.Array, strength) -> jax.Array:
  """Eq. 3, ``R = B * t + A * (1 - t) + S``; (H, W, 3) in [0, 1] -> (H, W, 3) in [0, 1]."""
  h, w = clean.shape[:2]
  strength = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  kd, kb, ka, kt, ks, kg, kr, kc = jax.random.split(key, 8)
  # Depth: grows towards a direction near "up" (or barely: uniform haze), plus smooth
  # random variation.
  direction = _uniform(kr, -0.6, 0.6)
  yy = jnp.linspace(1.0, 0.0, h, dtype=jnp.float32)[:, None]
  xx = jnp.linspace(-0.5, 0.5, w, dtype=jnp.float32)[None, :]
  ramp = yy * jnp.cos(direction) + xx * jnp.sin(direction)
  tilt = _uniform(kg, 0.0, 1.0)
  bumps = jax.image.resize(jax.random.uniform(kd, (4, 4)), (h, w), method="linear")
  depth = 0.4 + tilt * ramp + 0.5 * bumps
  beta = _lerp(0.0, 0.3, strength) * _uniform(kb, 0.7, 1.3)
  t = jnp.exp(-beta * jnp.maximum(depth, 0.05))[..., None]
  airlight = _uniform(ka, 0.6, 1.0) + _uniform(kt, -0.08, 0.08, (3,))
  # None, light or full-range streaks, a third each.
  streak_strength = strength * jnp.array([0.0, 0.25, 1.0])[jax.random.randint(kc, (), 0, 3)]
  s = streak_layer(ks, (h, w), streak_strength)
  return jnp.clip(clean * t + airlight * (1.0 - t) + s[..., None], 0.0, 1.0)


_RENDERERS = {"streak": add_streaks, "drop": add_drops, "mist": add_mist}


def add_rain(
  key: jax.Array,
  clean: jax.Array,
  rain_type: str = "mixed",
  strength=None,
  weights: tuple[float, ...] | None = None,
) -> jax.Array:
  """Renders rain over one clean image.

  Args:
    key: PRNG key; the same key, image and arguments give the same output.
    clean: (H, W, 3) float in [0, 1].
    rain_type: "streak", "drop", "mist", or "mixed" (one of the three drawn from key).
    strength: scalar in [0, 1] (light -> heavy), or None to draw it uniformly.
    weights: for "mixed", the relative odds of (streak, drop, mist); None is uniform. A
      traced array (an argument of a jitted caller) changes without recompiling, but is
      not checked.

  Returns:
    rainy: (H, W, 3) float32 in [0, 1].
  """
  clean = jnp.asarray(clean, jnp.float32)
  if clean.ndim != 3 or clean.shape[-1] != 3:
    raise ValueError(f"add_rain expects one (H, W, 3) image, got shape {clean.shape}")
  k_strength, k_type, k_render = jax.random.split(key, 3)
  if strength is None:
    strength = jax.random.uniform(k_strength, ())
  strength = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  if rain_type == "mixed":
    if weights is None:
      index = jax.random.randint(k_type, (), 0, len(RAIN_TYPES))
    else:
      p = normalized_weights(weights)
      index = jax.random.choice(k_type, len(RAIN_TYPES), p=p)
    branches = [functools.partial(_RENDERERS[t], k_render, clean) for t in RAIN_TYPES]
    return jax.lax.switch(index, branches, strength)
  if rain_type not in _RENDERERS:
    raise ValueError(f"rain_type must be one of {RAIN_TYPES + ('mixed',)}, got {rain_type!r}")
  return _RENDERERS[rain_type](k_render, clean, strength)


def normalized_weights(weights) -> jax.Array:
  """(streak, drop, mist) odds -> probabilities; a clear error for a bad tuple (traced
  weights are normalised unchecked)."""
  try:
    weights = tuple(float(w) for w in weights)
  except jax.errors.ConcretizationTypeError:
    weights = jnp.asarray(weights, jnp.float32)
    return weights / jnp.sum(weights)
  if len(weights) != len(RAIN_TYPES) or min(weights) < 0 or sum(weights) <= 0:
    raise ValueError(
      f"rain weights must be {len(RAIN_TYPES)} non-negative numbers for "
      f"{RAIN_TYPES} with a positive sum, got {weights}"
    )
  return jnp.asarray(weights, jnp.float32) / sum(weights)


@functools.partial(jax.jit, static_argnames=("rain_type", "weights"))
def add_rain_batch(
  key: jax.Array,
  clean: jax.Array,
  rain_type: str = "mixed",
  strength=None,
  weights: tuple[float, ...] | None = None,
) -> jax.Array:
  """``add_rain`` over a batch: clean (N, H, W, 3) in [0, 1] -> rainy (N, H, W, 3).

  ``strength`` is None (drawn per image), a scalar, or an (N,) array; ``weights`` (a
  tuple, static) as in ``add_rain``.
  """
  keys = jax.random.split(key, clean.shape[0])
  if strength is None:
    return jax.vmap(lambda k, c: add_rain(k, c, rain_type, weights=weights))(keys, clean)
  strength = jnp.broadcast_to(jnp.asarray(strength, jnp.float32), (clean.shape[0],))
  return jax.vmap(lambda k, c, s: add_rain(k, c, rain_type, s, weights))(keys, clean, strength)
