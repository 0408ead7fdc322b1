"""The paper's training loss: L1 + (1 - SSIM)."""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp


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
  ssim = jnp.mean(dm_pix.ssim(pred, target, max_val=1.0, filter_size=11, filter_sigma=1.5))
  return l1 + (1.0 - ssim), {"l1": l1, "ssim": ssim}
