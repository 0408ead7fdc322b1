"""PSNR and SSIM under the scoring protocols deraining papers report, and the no-reference
NIQE and BRISQUE for real rain without ground truth.

Reported numbers are comparable only under the same protocol (each is defined below).
``psnr`` and ``ssim`` take two uint8 images of the same shape (H, W, 3) -- the prediction
and the ground truth -- and return a Python float. ``niqe`` and ``brisque`` (from
``nasnet_jax.no_reference``, the authors' MATLAB code) take one image and return a float,
lower is better; ``no_reference_score`` picks one by name.

Protocols:
  ``"y8"``: Y of MATLAB ``rgb2ycbcr`` (BT.601 studio range) rounded to uint8, PSNR with
    peak 255, Wang et al. SSIM (Gaussian 11x11, sigma 1.5, K = (0.01, 0.03), L = 255,
    'valid' filtering, mean of the map) computed with ``dm_pix.ssim``. The protocol of
    Restormer/MPRNet/DRSformer's ``evaluate_PSNR_SSIM.m``.
  ``"ydouble"``: the same Y on ``im2double`` images without rounding, PSNR with peak 1,
    SSIM as above on Y*255 (PReNet/RCDNet ``statistic_*.m``).
  ``"ydouble_ds"``: PSNR as ``"ydouble"``; SSIM of Wang's 2009 ``ssim.m``, which first
    downsamples by ``f = max(1, round(min(H, W) / 256))`` (``downsample_like_ssim_m``),
    then scores as above (the statistics scripts of RCDNet, DID-MDN and DDN). Equal to
    ``"ydouble"`` below 384 pixels on the short side (Rain100L/H); f = 2 or 3 on
    Rain1400/Rain1200-sized images.
  ``"rgb"``: scikit-image PSNR on RGB and SSIM with its defaults averaged over channels
    (the NASNet authors, SPANet).
  ``"deraindrop"``: both images cropped to multiples of 4, full-range Y of OpenCV's
    BGR->YCrCb (its fixed-point arithmetic), scikit-image PSNR/SSIM defaults.

The "rgb" and "deraindrop" protocols are defined by scikit-image's implementation
(uniform 7x7 window, sample covariance), so they call scikit-image itself rather than
re-implementing it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
from skimage import metrics as skmetrics

from nasnet_jax.no_reference import brisque, niqe

PROTOCOLS = ("y8", "ydouble", "ydouble_ds", "rgb", "deraindrop")  # against ground truth
NO_REFERENCE_PROTOCOLS = ("niqe", "brisque")  # one image alone; lower is better
_NO_REFERENCE = {"niqe": niqe, "brisque": brisque}

# MATLAB rgb2ycbcr, Y row, for R, G, B in [0, 1]: Y = 16/255 + (Y_WEIGHTS . rgb) / 255.
_MATLAB_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
# OpenCV cvtColor 8-bit RGB->Y: fixed point with 14 fractional bits (R, G, B order).
_OPENCV_Y_WEIGHTS = np.array([4899, 9617, 1868], np.int64)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  pred = np.asarray(pred)
  gt = np.asarray(gt)
  for name, a in (("pred", pred), ("gt", gt)):
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
      raise ValueError(f"{name} must be a uint8 HxWx3 array, got {a.dtype} {a.shape}")
  if pred.shape != gt.shape:
    raise ValueError(f"pred and gt differ in size: {pred.shape} vs {gt.shape}")
  return pred, gt


def matlab_y(image: np.ndarray, rounded: bool = True) -> np.ndarray:
  """Y of MATLAB's ``rgb2ycbcr`` for a uint8 (H, W, 3) RGB image.

  Returns float64 (H, W): with ``rounded`` the uint8 result MATLAB gives for uint8 input
  (values 16..235, as floats); otherwise the double result in [16/255, 235/255].
  """
  rgb = image.astype(np.float64) / 255.0
  y = 16.0 / 255.0 + (rgb @ _MATLAB_Y_WEIGHTS) / 255.0
  if rounded:
    return np.round(y * 255.0)
  return y


def opencv_y(image: np.ndarray) -> np.ndarray:
  """Full-range Y of OpenCV's ``cvtColor(BGR2YCrCb)`` on 8-bit input, as uint8 (H, W)."""
  y = (image.astype(np.int64) @ _OPENCV_Y_WEIGHTS + (1 << 13)) >> 14
  return y.astype(np.uint8)


def matlab_round(x: float) -> int:
  """MATLAB's ``round``: halves away from zero (Python's ``round`` goes to even)."""
  return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def downsample_like_ssim_m(image: np.ndarray) -> np.ndarray:
  """The downsampling of Wang's 2009 ``ssim.m`` on a 2-D float image (H, W).

  ``f = max(1, round(min(H, W) / 256))``; if ``f > 1``, an f x f box filter
  (``imfilter(img, ones(f) / f^2, 'symmetric', 'same')``: a correlation whose kernel
  centre is ``floor((f + 1) / 2)``, so for even f the window starts at the pixel and
  reaches forward; borders mirrored including the edge pixel), then every f-th pixel from
  the first (``img(1:f:end, 1:f:end)``).
  """
  f = max(1, matlab_round(min(image.shape) / 256))
  if f == 1:
    return image
  before = (f + 1) // 2 - 1  # the centre's 0-based offset in the window
  padded = np.pad(image, ((before, f - 1 - before),) * 2, mode="symmetric")
  # Box sums from a summed-area table: exact window sums of f x f, in float64.
  table = np.pad(np.cumsum(np.cumsum(padded, 0), 1), ((1, 0), (1, 0)))
  h, w = image.shape
  sums = table[f : f + h, f : f + w] - table[:h, f : f + w] - table[f : f + h, :w] + table[:h, :w]
  return (sums / (f * f))[::f, ::f]


@functools.partial(jax.jit, static_argnames=("max_val",))
def _wang_ssim(a: jax.Array, b: jax.Array, max_val: float) -> jax.Array:
  return dm_pix.ssim(a, b, max_val=max_val, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
  mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
  if mse == 0.0:
    return math.inf
  return 10.0 * math.log10(peak * peak / mse)


def psnr(pred: np.ndarray, gt: np.ndarray, protocol: str = "y8") -> float:
  """PSNR in dB of uint8 (H, W, 3) ``pred`` against ``gt`` under ``protocol``."""
  pred, gt = _check_pair(pred, gt)
  if protocol == "y8":
    return _psnr(matlab_y(pred), matlab_y(gt), 255.0)
  if protocol in ("ydouble", "ydouble_ds"):
    return _psnr(matlab_y(pred, rounded=False), matlab_y(gt, rounded=False), 1.0)
  if protocol == "rgb":
    return float(skmetrics.peak_signal_noise_ratio(gt, pred, data_range=255))
  if protocol == "deraindrop":
    p, g = _deraindrop_y(pred, gt)
    return float(skmetrics.peak_signal_noise_ratio(g, p, data_range=255))
  raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def ssim(pred: np.ndarray, gt: np.ndarray, protocol: str = "y8") -> float:
  """SSIM of uint8 (H, W, 3) ``pred`` against ``gt`` under ``protocol``."""
  pred, gt = _check_pair(pred, gt)
  if protocol in ("y8", "ydouble", "ydouble_ds"):
    if min(pred.shape[:2]) < 11:
      raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {pred.shape}")
    rounded = protocol == "y8"
    yp = matlab_y(pred, rounded) * (1.0 if rounded else 255.0)
    yg = matlab_y(gt, rounded) * (1.0 if rounded else 255.0)
    if protocol == "ydouble_ds":
      yp, yg = downsample_like_ssim_m(yp), downsample_like_ssim_m(yg)
    return float(
      _wang_ssim(
        jnp.asarray(yp[..., None], jnp.float32), jnp.asarray(yg[..., None], jnp.float32), 255.0
      )
    )
  if protocol == "rgb":
    return float(skmetrics.structural_similarity(gt, pred, channel_axis=-1, data_range=255))
  if protocol == "deraindrop":
    p, g = _deraindrop_y(pred, gt)
    return float(skmetrics.structural_similarity(g, p, data_range=255))
  raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def no_reference_score(image: np.ndarray, protocol: str) -> float:
  """``niqe`` or ``brisque`` (``protocol``) of one uint8 (H, W, 3) image; lower is better."""
  if protocol not in _NO_REFERENCE:
    raise ValueError(
      f"unknown no-reference protocol {protocol!r}; choose one of {NO_REFERENCE_PROTOCOLS}"
    )
  return _NO_REFERENCE[protocol](image)


def _deraindrop_y(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  h = pred.shape[0] - pred.shape[0] % 4
  w = pred.shape[1] - pred.shape[1] % 4
  return opencv_y(pred[:h, :w]), opencv_y(gt[:h, :w])


def to_uint8(image) -> np.ndarray:
  """A float image in [0, 1] (any shape) -> uint8, clipped and rounded."""
  return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def split_protocols(protocols: Sequence[str]) -> tuple[list[str], list[str]]:
  """(full-reference, no-reference) protocols of ``protocols``, each in the order given;
  ValueError naming the unknown ones."""
  known = PROTOCOLS + NO_REFERENCE_PROTOCOLS
  unknown = [p for p in protocols if p not in known]
  if unknown:
    raise ValueError(f"unknown protocol(s) {unknown}; choose from {known}")
  full = [p for p in protocols if p in PROTOCOLS]
  return full, [p for p in protocols if p in NO_REFERENCE_PROTOCOLS]
