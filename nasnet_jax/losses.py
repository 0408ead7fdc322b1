"""The paper's training loss: L1 + (1 - SSIM)."""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
# Up to this side the Gaussian filter runs as a matrix product (see ``_banded_filter``).
BANDED_FILTER_MAX_SIZE = 512
# Full float32 products in the Gaussian filter on every platform (see ``_banded_filter``).
SSIM_FILTER_PRECISION = jax.lax.Precision.HIGHEST


def _gaussian_band(n: int) -> np.ndarray:
  """(n, n - 10) matrix whose column j holds dm_pix's normalised 11-tap Gaussian
  (sigma 1.5) at rows j..j+10: ``z @ band`` is the "valid" filtering of z's rows."""
  half = SSIM_FILTER_SIZE // 2
  taps = np.exp(-0.5 * ((np.arange(SSIM_FILTER_SIZE) - half) / SSIM_FILTER_SIGMA) ** 2)
  taps /= taps.sum()
  band = np.zeros((n, n - SSIM_FILTER_SIZE + 1), np.float32)
  for j in range(band.shape[1]):
    band[j : j + SSIM_FILTER_SIZE, j] = taps
  return band


def _banded_filter(z: jax.Array) -> jax.Array:
  """dm_pix.ssim's separable Gaussian ("valid") on (N, H, W, C) as two matrix products.

  dm_pix filters with ``jnp.convolve`` vmapped over rows, which XLA:CPU runs several times
  slower, forward and backward, than these products (a banded (W, W - 10) matrix: more
  arithmetic, but XLA's fastest kernel; ``benchmarks/RESULTS.md``). Same values to float
  rounding; used for sides up to ``BANDED_FILTER_MAX_SIZE``.

  The products run at ``Precision.HIGHEST``, as dm_pix's own filter does: at the default
  precision a TPU multiplies in one bfloat16 pass and a recent GPU in TF32, which moves
  SSIM by up to 0.2 (TPU) or 0.01 (TF32) with no error, a wrong loss and gradient.
  """
  h, w = z.shape[-3], z.shape[-2]
  z = jnp.einsum("nhwc,wv->nhvc", z, _gaussian_band(w), precision=SSIM_FILTER_PRECISION)
  return jnp.einsum("nhwc,hv->nvwc", z, _gaussian_band(h), precision=SSIM_FILTER_PRECISION)


def ssim(pred: jax.Array, target: jax.Array) -> jax.Array:
  """``dm_pix.ssim`` (11x11 Gaussian window, sigma 1.5, max value 1) per image, (N,)."""
  small = max(pred.shape[-3], pred.shape[-2]) <= BANDED_FILTER_MAX_SIZE
  return dm_pix.ssim(
    pred,
    target,
    max_val=1.0,
    filter_size=SSIM_FILTER_SIZE,
    filter_sigma=SSIM_FILTER_SIGMA,
    filter_fn=_banded_filter if small and pred.ndim == 4 else None,
  )


def l1_ssim_loss(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """L1 + (1 - SSIM) between batches of RGB images.

  SSIM is ``dm_pix.ssim`` with an 11x11 Gaussian window, sigma 1.5, on [0, 1] RGB
  (max value 1), averaged over the channels and the batch.

  Args:
    pred: (N, H, W, 3) float prediction, nominally in [0, 1] (not clipped, so the
      gradient is never cut off).
    target: (N, H, W, 3) float clean images in [0, 1].

  Returns:
    (loss, {"l1": ..., "ssim": ...}), all float32 scalars.
  """
  pred = pred.astype(jnp.float32)
  target = target.astype(jnp.float32)
  l1 = jnp.mean(jnp.abs(pred - target))
  ssim_value = jnp.mean(ssim(pred, target))
  return l1 + (1.0 - ssim_value), {"l1": l1, "ssim": ssim_value}


LOSSES = ("l1_ssim", "l1", "charbonnier")
CHARBONNIER_EPSILON = 1e-3


def image_loss(
  name: str, pred: jax.Array, target: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The training loss ``name`` between (N, H, W, 3) batches in [0, 1].

  "l1_ssim": L1 + (1 - SSIM) (NASNet's); "l1": mean absolute error (DDSA's recipe);
  "charbonnier": mean sqrt((pred - target)^2 + 1e-6). Returns (loss, {"l1", "ssim"}):
  both metrics are always reported, the ones the loss does not use without gradient.
  """
  if name not in LOSSES:
    raise ValueError(f"config.loss={name!r} is unknown; choose one of {LOSSES}")
  if name == "l1_ssim":
    return l1_ssim_loss(pred, target)
  pred = pred.astype(jnp.float32)
  target = target.astype(jnp.float32)
  diff = pred - target
  l1 = jnp.mean(jnp.abs(diff))
  ssim_value = jax.lax.stop_gradient(jnp.mean(ssim(pred, target)))
  if name == "l1":
    return l1, {"l1": l1, "ssim": ssim_value}
  loss = jnp.mean(jnp.sqrt(jnp.square(diff) + CHARBONNIER_EPSILON**2))
  return loss, {"l1": jax.lax.stop_gradient(l1), "ssim": ssim_value}
