"""NIQE and BRISQUE, the no-reference scores of real rainy photos, following the authors'
MATLAB code step by step (lower is better for both).

``niqe`` is ``computequality.m`` of the NIQE release (Mittal, Soundararajan & Bovik 2013)
with ``niqe.m``'s settings; ``brisque`` is ``brisquescore.m`` of the BRISQUE release
(Mittal, Moorthy & Bovik 2012), its libsvm steps included. Both take a uint8 image, or a
float image in [0, 1] that is rounded to uint8 first (the releases read 8-bit files):
(H, W, 3) RGB, or (H, W) / (H, W, 1) gray. Each step is a function here, so that tests can
check it alone; docs/protocols.md says what each step is and who reports which score.

The models are those of the releases (``iqa_models/``: NIQE's pristine mean and
covariance, BRISQUE's epsilon-SVR and its feature range; README.md there names their
source and licence). Everything is numpy/scipy in float64.
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import numpy as np
from scipy import special

MODEL_DIR = os.path.join(os.path.dirname(__file__), "iqa_models")

# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
NIQE_PATCH = 96  # niqe.m's blocksizerow / blocksizecol (no overlap)
BRISQUE_MIN_SIDE = 14  # the 7x7 window still fits at half size
# The shape grid of estimateggdparam.m / estimateaggdparam.m: gam = 0.2:0.001:10.
SHAPES = 0.2 + 0.001 * np.arange(9801)


def gray_levels(image) -> np.ndarray:
  """The image the releases score: float64 (H, W) grey levels, integers in 0..255.

  uint8 RGB goes through MATLAB's ``rgb2gray`` (``RGB2GRAY_WEIGHTS``, rounded half away
  from zero to uint8); gray images are taken as they are; floats in [0, 1] are rounded to
  uint8 first. Anything else is a ValueError.
  """
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
    raise ValueError(f"expected an HxWx3 RGB or HxW gray image, got shape {image.shape}")
  if np.issubdtype(image.dtype, np.floating):
    image = np.floor(np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
  elif image.dtype != np.uint8:
    raise ValueError(f"expected uint8 or float in [0, 1], got {image.dtype}")
  image = image.astype(np.float64)
  if image.ndim == 2:
    return image
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  y = r * RGB2GRAY_WEIGHTS[0] + g * RGB2GRAY_WEIGHTS[1] + b * RGB2GRAY_WEIGHTS[2]
  return np.clip(np.floor(y + 0.5), 0.0, 255.0)


@functools.cache
def gaussian_factor() -> np.ndarray:
  """The 1-D Gaussian exp(-x^2 / (2 (7/6)^2)) at x = -3..3 divided by its sum: (7,),
  which adds up to 1.0 in float64 left to right. Its outer product with itself is
  ``fspecial('gaussian', 7, 7/6)`` (to rounding), the window both releases normalise
  their images with."""
  x = np.arange(-3.0, 4.0)
  factor = np.exp(-(x**2) / (2.0 * (7.0 / 6.0) ** 2))
  return factor / factor.sum()


def gaussian_filter(
  image: np.ndarray, padding: str, factors: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
  """The 7x7 Gaussian window over a float (H, W) image, 'same' size, as the releases'
  MATLAB functions apply it: (H, W) float64.

  Both split a rank-1 kernel into a column and a row factor and filter with one after
  the other, each output adding its 7 products left to right. ``padding="zero"`` is
  BRISQUE's ``filter2(..., 'same')``, which runs ``conv2(hcol, hrow, x)``: down the
  columns first. ``"replicate"`` is NIQE's ``imfilter(..., 'replicate')``, which pads,
  then filters along the rows first. ``factors`` (column, row), each (7,), replace
  ``gaussian_factor()`` (to measure how much their last bits matter).

  That matters where a window sees one grey level: the filtered value is the level
  itself at some levels and the level plus a rounding residue (about 1e-14) at others,
  depending on the factors, and the fits below count the residue's sign (see ``mscn``).
  """
  mode = {"replicate": "edge", "zero": "constant"}[padding]
  column, row = factors or (gaussian_factor(),) * 2
  passes = [(0, column), (1, row)] if padding == "zero" else [(1, row), (0, column)]
  out = np.asarray(image, np.float64)
  for axis, factor in passes:
    length = out.shape[axis]
    padded = np.pad(out, [(3, 3) if a == axis else (0, 0) for a in range(2)], mode=mode)
    total = np.zeros_like(out)
    for k in range(7):  # tap k meets the input 3 - k pixels ahead (conv2's indexing)
      start = 6 - k
      taken = padded[start : start + length] if axis == 0 else padded[:, start : start + length]
      total = total + factor[k] * taken
    out = total
  return out


def mscn(image: np.ndarray, padding: str) -> np.ndarray:
  """Mean-subtracted contrast-normalised coefficients of a float (H, W) image: (H, W).

  ``(I - mu) / (sigma + 1)`` with mu and sigma from ``gaussian_filter``. Where the
  window sees one grey level (saturated sky, a flat wall, a colour-quantised image) the
  exact coefficient is 0, but MATLAB's filter leaves a residue of about 1e-14 at some
  levels, and the AGGD fits, which split values by sign and ignore their size, count it
  as texture. Rebuilding MATLAB's separable filter, as here, moves BRISQUE on such images
  much closer to MATLAB's values than the exact 0 does (benchmarks/RESULTS.md).
  """
  mu = gaussian_filter(image, padding)
  sigma = np.sqrt(np.abs(gaussian_filter(image * image, padding) - mu * mu))
  return (image - mu) / (sigma + 1.0)


def _cubic(x: np.ndarray) -> np.ndarray:
  """MATLAB imresize's bicubic kernel (a = -0.5)."""
  ax = np.abs(x)
  near = (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1)
  far = (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
  return near + far


@functools.cache
def _half_matrix(length: int) -> np.ndarray:
  """The (ceil(length / 2), length) matrix of ``imresize(x, 0.5)`` along one axis.

  MATLAB's ``contributions``: output pixel i (1-based) sits at u = 2i - 0.5; the bicubic
  kernel, stretched by 2 against aliasing, spans 8 input pixels (10 candidates from
  floor(u - 4)), its weights divided by their sum; positions outside the image are
  mirrored with the edge pixel repeated.
  """
  scale = 0.5
  out = math.ceil(length * scale)
  u = np.arange(1, out + 1) / scale + 0.5 * (1.0 - 1.0 / scale)
  width = 4.0 / scale
  left = np.floor(u - width / 2.0)
  candidates = left[:, None] + np.arange(math.ceil(width) + 2)[None, :]
  weights = scale * _cubic(scale * (u[:, None] - candidates))
  weights /= weights.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(length), np.arange(length)[::-1]])
  index = mirror[np.mod(candidates.astype(np.int64) - 1, 2 * length)]
  matrix = np.zeros((out, length))
  np.add.at(matrix, (np.repeat(np.arange(out), index.shape[1]), index.ravel()), weights.ravel())
  return matrix


def imresize_half(image: np.ndarray) -> np.ndarray:
  """MATLAB ``imresize(image, 0.5)`` of a float (H, W) image: bicubic with antialiasing,
  (ceil(H / 2), ceil(W / 2)), not rounded (the releases resize doubles). Rows first."""
  return (_half_matrix(image.shape[0]) @ image) @ _half_matrix(image.shape[1]).T


def _first_nearest(distance: np.ndarray) -> np.ndarray:
  """Index of the smallest entry along the last axis, the first of ties; 0 where a row is
  all NaN (MATLAB's ``min`` skips NaN and gives index 1 when nothing else is left)."""
  nan_rows = np.all(np.isnan(distance), axis=-1)
  index = np.argmin(np.where(np.isnan(distance), np.inf, distance), axis=-1)
  return np.where(nan_rows, 0, index)


@functools.cache
def _ggd_ratios() -> np.ndarray:
  g = SHAPES
  return special.gamma(1 / g) * special.gamma(3 / g) / special.gamma(2 / g) ** 2


@functools.cache
def _aggd_ratios() -> np.ndarray:
  g = SHAPES
  return special.gamma(2 / g) ** 2 / (special.gamma(1 / g) * special.gamma(3 / g))


def fit_ggd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``estimateggdparam.m`` over the last axis of ``values`` (..., n): (shape, sigma).

  sigma is the root mean square; the shape is the grid value whose
  Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2 is nearest to mean(x^2) / mean(|x|)^2.
  """
  with np.errstate(all="ignore"):
    sigma_sq = np.mean(values**2, axis=-1)
    rho = sigma_sq / np.mean(np.abs(values), axis=-1) ** 2
  index = _first_nearest(np.abs(rho[..., None] - _ggd_ratios()))
  return SHAPES[index], np.sqrt(sigma_sq)


def fit_aggd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``estimateaggdparam.m`` over the last axis of ``values`` (..., n):
  (shape, left std, right std).

  The left (right) std is the root mean square of the negative (positive) values, zeros
  in neither; the shape is the grid value whose Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) is
  nearest to r (g^3 + 1)(g + 1) / (g^2 + 1)^2 with g = left / right and
  r = mean(|x|)^2 / mean(x^2). A side without values gives NaN, as in MATLAB.
  """
  with np.errstate(all="ignore"):
    negative, positive = values < 0, values > 0
    squares = values**2
    left = np.sqrt(np.sum(squares * negative, axis=-1) / np.sum(negative, axis=-1))
    right = np.sqrt(np.sum(squares * positive, axis=-1) / np.sum(positive, axis=-1))
    g = left / right
    r = np.mean(np.abs(values), axis=-1) ** 2 / np.mean(squares, axis=-1)
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
  index = _first_nearest((_aggd_ratios() - r_norm[..., None]) ** 2)
  return SHAPES[index], left, right


# ----------------------------------------------------------------------------- NIQE


@functools.cache
def niqe_model() -> tuple[np.ndarray, np.ndarray]:
  """The NIQE release's pristine model: mean (36,) and covariance (36, 36)."""
  with np.load(os.path.join(MODEL_DIR, "niqe_pristine.npz")) as model:
    return model["mean"], model["covariance"]


def niqe_patch_features(coefficients: np.ndarray, patch: int) -> np.ndarray:
  """``computefeature.m`` on each ``patch`` x ``patch`` block of MSCN ``coefficients``
  (H, W multiples of ``patch``): (blocks, 18), blocks in row-major order.

  Per block: the AGGD fit of the coefficients (shape, mean of the two scales), then for
  the neighbour products along (0, 1), (1, 0), (1, 1), (1, -1), each shifted
  circularly within the block (``circshift``), the AGGD shape, its mean
  (right - left) Gamma(2/a) / Gamma(1/a), and the left and right scales; a scale is
  std * sqrt(Gamma(1/a) / Gamma(3/a)).
  """
  h, w = coefficients.shape
  blocks = coefficients.reshape(h // patch, patch, w // patch, patch).swapaxes(1, 2)
  blocks = blocks.reshape(-1, patch, patch)
  features = []

  def fit(values):
    shape, left, right = fit_aggd(values.reshape(len(values), -1))
    to_scale = np.sqrt(special.gamma(1 / shape) / special.gamma(3 / shape))
    return shape, left * to_scale, right * to_scale

  shape, left, right = fit(blocks)
  features += [shape, (left + right) / 2]
  for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
    shape, left, right = fit(blocks * np.roll(blocks, shift, axis=(1, 2)))
    mean = (right - left) * (special.gamma(2 / shape) / special.gamma(1 / shape))
    features += [shape, mean, left, right]
  return np.stack(features, axis=1)


def niqe_features(gray: np.ndarray) -> np.ndarray:
  """The 36 features of every 96x96 patch of grey levels (H, W): (patches, 36).

  The image is cropped to whole patches (top-left kept); 18 features at full size from
  96x96 blocks, 18 at half size (``imresize_half``) from the same blocks' 48x48 halves;
  MSCN with replicated borders.
  """
  h, w = gray.shape
  if h < NIQE_PATCH or w < NIQE_PATCH:
    raise ValueError(
      f"NIQE needs at least {NIQE_PATCH}x{NIQE_PATCH} pixels (one {NIQE_PATCH}x{NIQE_PATCH} "
      f"patch, {NIQE_PATCH // 2}x{NIQE_PATCH // 2} at half size), got {w}x{h}"
    )
  image = gray[: h - h % NIQE_PATCH, : w - w % NIQE_PATCH]
  full = niqe_patch_features(mscn(image, "replicate"), NIQE_PATCH)
  half = niqe_patch_features(mscn(imresize_half(image), "replicate"), NIQE_PATCH // 2)
  return np.concatenate([full, half], axis=1)


def nancov(features: np.ndarray) -> np.ndarray:
  """MATLAB ``nancov`` of (n, d) observations: rows holding a NaN are left out, then the
  covariance normalised by n - 1 (by n when one row is left). One row in all is a vector
  to MATLAB: the sample variance of its values (NaN left out), a scalar."""
  if features.shape[0] == 1:
    values = features[0][~np.isnan(features[0])]
    return np.array(np.var(values, ddof=1) if values.size > 1 else np.nan)
  rows = features[~np.any(np.isnan(features), axis=1)]
  if rows.shape[0] == 0:
    return np.full((features.shape[1],) * 2, np.nan)
  centred = rows - rows.mean(axis=0)
  return centred.T @ centred / max(rows.shape[0] - 1, 1)


def pinv(matrix: np.ndarray) -> np.ndarray:
  """MATLAB ``pinv``: singular values up to max(size) * eps(largest) count as zero."""
  tolerance = max(matrix.shape) * np.finfo(np.float64).eps
  return np.linalg.pinv(matrix, rcond=tolerance)


def niqe(image) -> float:
  """NIQE of an image (see the module docstring for what it takes); lower is better.

  The distance between the pristine model (mean m, covariance C) and a Gaussian fitted to
  the image's patch features (mean mu over non-NaN values per feature, ``nancov`` S):
  sqrt((m - mu) pinv((C + S) / 2) (m - mu)^T). NaN where no patch has texture.
  """
  features = niqe_features(gray_levels(image))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = np.nanmean(features, axis=0)
  pristine_mean, pristine_covariance = niqe_model()
  covariance = (pristine_covariance + nancov(features)) / 2
  if np.any(np.isnan(covariance)) or np.any(np.isnan(mean)):
    return math.nan
  difference = pristine_mean - mean
  return float(np.sqrt(difference @ pinv(covariance) @ difference))


# ----------------------------------------------------------------------------- BRISQUE


@functools.cache
def brisque_model() -> dict[str, np.ndarray]:
  """The BRISQUE release's ``allmodel`` (support vectors, coefficients, gamma, rho) and
  ``allrange`` (feature_min, feature_max, scaled_range), as float64 arrays."""
  with np.load(os.path.join(MODEL_DIR, "brisque_svr.npz")) as model:
    return {key: model[key] for key in model.files}


def brisque_features(gray: np.ndarray) -> np.ndarray:
  """``brisque_feature.m`` on grey levels (H, W): the 36 features, (36,).

  At full and half size (``imresize_half``) of the whole image, MSCN with zero borders:
  the GGD fit (shape, variance), then for the neighbour products along (0, 1), (1, 0),
  (1, 1), (-1, 1) (circular shifts of the whole image) the AGGD shape, its mean
  (right - left) Gamma(2/a) / Gamma(1/a) sqrt(Gamma(1/a) / Gamma(3/a)), and the left
  and right variances.
  """
  h, w = gray.shape
  if min(h, w) < BRISQUE_MIN_SIDE:
    raise ValueError(
      f"BRISQUE needs at least {BRISQUE_MIN_SIDE}x{BRISQUE_MIN_SIDE} pixels (its 7x7 window "
      f"at half size), got {w}x{h}"
    )
  features = []
  image = gray
  for scale in range(2):
    coefficients = mscn(image, "zero")
    shape, sigma = fit_ggd(coefficients.ravel())
    features += [shape, sigma**2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
      pair = coefficients * np.roll(coefficients, shift, axis=(0, 1))
      shape, left, right = fit_aggd(pair.ravel())
      to_mean = special.gamma(2 / shape) / special.gamma(1 / shape)
      to_mean *= math.sqrt(special.gamma(1 / shape)) / math.sqrt(special.gamma(3 / shape))
      features += [shape, (right - left) * to_mean, left**2, right**2]
    if scale == 0:
      image = imresize_half(image)
  return np.array(features, np.float64)


def _as_text(value: float, spec: str) -> float:
  """``value`` printed with C's ``spec`` and read back (what the text files between
  MATLAB, svm-scale and svm-predict do)."""
  return float(format(value, spec))


def brisque_scaled(features: np.ndarray) -> np.ndarray:
  """The release's scaling of features (36,): MATLAB writes each with ``%f``,
  ``svm-scale -r allrange`` maps [min, max] to [-1, 1] (min and max exactly to the ends)
  and writes ``%g`` (6 significant digits): (36,)."""
  model = brisque_model()
  lower, upper = model["scaled_range"]
  scaled = []
  for value, low, high in zip(features, model["feature_min"], model["feature_max"]):
    value = _as_text(value, ".6f")
    if value == low:
      value = lower
    elif value == high:
      value = upper
    else:
      value = lower + (upper - lower) * (value - low) / (high - low)
    scaled.append(_as_text(value, ".6g"))
  return np.array(scaled)


def brisque_svr(scaled: np.ndarray) -> float:
  """``svm-predict`` of the release's epsilon-SVR on scaled features (36,):
  sum_i c_i exp(-gamma |x - v_i|^2) - rho (with ``-b 1`` an SVR predicts the same)."""
  model = brisque_model()
  distances = np.sum((model["support_vectors"] - scaled) ** 2, axis=1)
  kernel = np.exp(-model["gamma"] * distances)
  return float(kernel @ model["coefficients"] - model["rho"])


def brisque(image) -> float:
  """BRISQUE of an image (see the module docstring for what it takes); lower is better,
  about 0..100 on natural photos. NaN where the image has no texture."""
  return brisque_svr(brisque_scaled(brisque_features(gray_levels(image))))
