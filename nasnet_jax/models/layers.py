"""Layers shared by the transformer deraining networks (``DDSA``, ``DualStageNet``).

All take and return NHWC arrays. ``valid`` arguments are (N, H, W, 1) masks, 1 on image
pixels and 0 on padding: the networks zero every activation outside it before a spatial
operation reads it, so padding acts as the zero "same" padding at the image border and the
output on the image does not depend on how much padding a caller added.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

LAYER_NORMS = ("bias_free", "with_bias")


def masked(x: jax.Array, valid: jax.Array | None) -> jax.Array:
  """``x`` zeroed outside ``valid`` (no-op when valid is None)."""
  return x if valid is None else x * valid.astype(x.dtype)


def pool_valid(valid: jax.Array, factor: int = 2) -> jax.Array:
  """(N, H, W, 1) mask -> (N, H/f, W/f, 1): a coarse pixel is valid if any of its fine
  pixels is (H and W must be multiples of ``factor``)."""
  n, h, w, c = valid.shape
  return valid.reshape(n, h // factor, factor, w // factor, factor, c).max(axis=(2, 4))


def pixel_unshuffle(x: jax.Array, factor: int = 2) -> jax.Array:
  """(N, H, W, C) -> (N, H/f, W/f, C*f*f), channel order (c, dy, dx) as PyTorch's
  ``nn.PixelUnshuffle``."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // factor, factor, w // factor, factor, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // factor, w // factor, c * factor**2)


def pixel_shuffle(x: jax.Array, factor: int = 2) -> jax.Array:
  """(N, H, W, C*f*f) -> (N, H*f, W*f, C), the inverse of ``pixel_unshuffle``
  (PyTorch's ``nn.PixelShuffle``)."""
  n, h, w, cff = x.shape
  c = cff // factor**2
  x = x.reshape(n, h, w, c, factor, factor).transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(n, h * factor, w * factor, c)


def pad_to_multiple(
  x: jax.Array, valid: jax.Array | None, multiple: int
) -> tuple[jax.Array, jax.Array]:
  """Zero-pads (N, H, W, C) images at the bottom and right to multiples of ``multiple``
  and returns them with the matching valid mask (all ones on the input when ``valid``
  is None)."""
  n, h, w, _ = x.shape
  if valid is None:
    valid = jnp.ones((n, h, w, 1), x.dtype)
  # Written as multiple * ceil(size / multiple) so that, with jax.export's symbolic sizes,
  # the padded size is provably a multiple and every level's halving is exact.
  ph = (h + multiple - 1) // multiple * multiple - h
  pw = (w + multiple - 1) // multiple * multiple - w
  pads = ((0, 0), (0, ph), (0, pw), (0, 0))
  return jnp.pad(x, pads), jnp.pad(valid, pads).astype(x.dtype)


def l2_normalize(x: jax.Array, axis: int = -1, epsilon: float = 1e-12) -> jax.Array:
  """``x / max(|x|, epsilon)`` along ``axis`` in float32 (torch.nn.functional.normalize),
  written so that an all-zero vector (a black crop, or padding outside the image) has a
  finite gradient: ``jnp.linalg.norm``'s gradient at 0 is NaN (0 / 0), and a ``maximum``
  after it does not stop the NaN from reaching the parameters."""
  x = x.astype(jnp.float32)
  squared = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, epsilon * epsilon))


def masked_mean(x: jax.Array, valid: jax.Array | None) -> jax.Array:
  """(N, H, W, C) -> (N, C): the mean over the valid pixels."""
  if valid is None:
    return x.mean(axis=(1, 2))
  v = valid.astype(jnp.float32)
  total = (x.astype(jnp.float32) * v).sum(axis=(1, 2))
  return total / jnp.maximum(v.sum(axis=(1, 2)), 1.0)


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
  """Boolean mask of the ``k`` largest entries of each row (last axis): exactly ``k`` True
  per row, ties broken by position (``lax.top_k``'s indices, not a threshold, so ties at
  the k-th value cannot keep more)."""
  n = logits.shape[-1]
  if not 1 <= k <= n:
    raise ValueError(f"top-k needs 1 <= k <= {n}, got k={k}")
  _, index = jax.lax.top_k(logits, k)
  return jnp.any(index[..., :, None] == jnp.arange(n), axis=-2)


def sparse_k(ratio: float, n: int) -> int:
  """How many of ``n`` logits a sparse branch with keep-ratio ``ratio`` keeps:
  ceil(ratio * n), at least 1."""
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"sparse keep ratios must be in (0, 1], got {ratio}")
  return max(1, min(n, math.ceil(ratio * n - 1e-9)))


class ChannelLayerNorm(nn.Module):
  """LayerNorm over the channel axis of (N, H, W, C), statistics in float32.

  ``kind="bias_free"`` is Restormer's BiasFree_LayerNorm, ``x / sqrt(var + eps) * w``
  (the variance is about the mean, but the mean is not subtracted); ``"with_bias"`` is
  the usual ``(x - mean) / sqrt(var + eps) * w + b``.
  """

  kind: str = "bias_free"
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kind not in LAYER_NORMS:
      raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {self.kind!r}")
    c = x.shape[-1]
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
    if self.kind == "bias_free":
      y = x32 * jax.lax.rsqrt(var + self.epsilon) * scale
    else:
      bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
      y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(self.dtype or x.dtype)
