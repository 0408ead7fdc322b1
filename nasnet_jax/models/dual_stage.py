"""DualStageNet: the dual-stage deraining network of mask and non-local attention (Hou,
Shen, Li, Yang & Zhang, 2026).

Maps a rainy image (N, H, W, 3) in [0, 1], any H and W, to the derained image (float32,
not clipped). Only the paper's abstract was available: stage 1 suppresses rain with
window attention that can leave out the keys of a morphological rain mask, and ends in an
intermediate image (sown as "stage_outputs", which training puts a loss on); stage 2
reconstructs detail with non-local attention over pixels rearranged by learned clusters.
What the abstract says and what is inferred, layer by layer: docs/dual_stage.md. The
input is padded to the window inside the network with a valid mask, so the output on the
image does not depend on a caller's padding; stage 2 is global, so tiles are blended.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nasnet_jax.models.convolution import CONV_IMPLS, pytorch_init_conv
from nasnet_jax.models.feed_forward import SpatialEnhancedFeedForward
from nasnet_jax.models.layers import ChannelLayerNorm, l2_normalize, masked, pad_to_multiple
from nasnet_jax.models.network import NonLocalNetwork

Dtype = Any

MASK_ELEMENTS = ("disk", "lines")
MASK_THRESHOLDS = ("fixed", "otsu")


# --- The morphological rain mask ------------------------------------------------------


def luma(images: jax.Array) -> jax.Array:
  """(N, H, W, 3) RGB -> (N, H, W, 1) BT.601 luma, float32."""
  weights = jnp.asarray([0.299, 0.587, 0.114], jnp.float32)
  return (images.astype(jnp.float32) * weights).sum(axis=-1, keepdims=True)


def disk_offsets(radius: int) -> tuple[tuple[int, int], ...]:
  """(dy, dx) of a flat disk structuring element, dy^2 + dx^2 <= radius^2 (radius 2 is
  scikit-image's ``disk(2)``, 13 pixels of a 5x5 square)."""
  r = int(radius)
  return tuple(
    (dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy * dy + dx * dx <= r * r
  )


def line_offsets(length: int, angle: float) -> tuple[tuple[int, int], ...]:
  """(dy, dx) of a ``length``-pixel line through the origin at ``angle`` radians
  (0: horizontal), symmetric about the origin."""
  half = (length - 1) / 2
  points = []
  for t in np.linspace(-half, half, length):
    p = (int(np.round(t * np.sin(angle))), int(np.round(t * np.cos(angle))))
    if p not in points:
      points.append(p)
  return tuple(points)


def _shifted_reduce(y: jax.Array, offsets, reduce: Callable, fill: float) -> jax.Array:
  """reduce over d in offsets of y(p + d), for (N, H, W, 1) y; outside it is ``fill``."""
  r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
  h, w = y.shape[1], y.shape[2]
  padded = jnp.pad(y, ((0, 0), (r, r), (r, r), (0, 0)), constant_values=fill)
  out = None
  for dy, dx in offsets:
    shifted = jax.lax.slice_in_dim(
      jax.lax.slice_in_dim(padded, r + dy, r + dy + h, axis=1), r + dx, r + dx + w, axis=2
    )
    out = shifted if out is None else reduce(out, shifted)
  return out


def opening(y: jax.Array, valid: jax.Array, offsets) -> jax.Array:
  """Grey opening (erosion, then dilation, by the flat element ``offsets``) of (N, H, W, 1)
  ``y`` over the pixels where ``valid`` is True; the others count as absent.

  The element may hang over the image's edge (it is truncated there), so an edge pixel is
  not removed just because the image falls away behind it; and the result on the valid
  pixels does not depend on how many invalid ones surround them.
  """
  r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
  h, w = y.shape[1], y.shape[2]
  outside = ((0, 0), (r, r), (r, r), (0, 0))
  # Erode at every placement of the element that touches the image, including those
  # centred up to r pixels outside it; a placement touching no valid pixel is absent.
  eroded = _shifted_reduce(
    jnp.pad(jnp.where(valid, y, jnp.inf), outside, constant_values=jnp.inf),
    offsets,
    jnp.minimum,
    jnp.inf,
  )
  eroded = jnp.where(jnp.isposinf(eroded), -jnp.inf, eroded)
  reflected = tuple((-dy, -dx) for dy, dx in offsets)
  opened = _shifted_reduce(eroded, reflected, jnp.maximum, -jnp.inf)
  return jax.lax.slice_in_dim(jax.lax.slice_in_dim(opened, r, r + h, axis=1), r, r + w, axis=2)


def otsu_threshold(values: jax.Array, valid: jax.Array, bins: int = 256) -> jax.Array:
  """Otsu's threshold of each image's (N, H, W, 1) ``values`` in [0, 1] over its valid
  pixels: the bin edge that maximises the between-class variance. -> (N, 1, 1, 1)."""

  def one(v, ok):
    index = jnp.clip(jnp.floor(v * bins), 0, bins - 1).astype(jnp.int32).ravel()
    hist = jnp.zeros((bins,), jnp.float32).at[index].add(ok.ravel().astype(jnp.float32))
    p = hist / jnp.maximum(hist.sum(), 1.0)
    omega = jnp.cumsum(p)
    mu = jnp.cumsum(p * (jnp.arange(bins, dtype=jnp.float32) + 0.5) / bins)
    spread = omega * (1.0 - omega)
    between = jnp.where(
      spread > 1e-12, jnp.square(mu[-1] * omega - mu) / jnp.maximum(spread, 1e-12), -1.0
    )
    return (jnp.argmax(between) + 1).astype(jnp.float32) / bins

  return jax.vmap(one)(values, valid).reshape(-1, 1, 1, 1)


def rain_mask(
  images: jax.Array,
  valid: jax.Array | None = None,
  *,
  element: str = "disk",
  radius: int = 2,
  line_length: int = 11,
  orientations: int = 12,
  threshold: str = "fixed",
  level: float = 0.05,
  dilation: int = 1,
) -> jax.Array:
  """The rain-streak mask of (N, H, W, 3) rainy images in [0, 1] -> (N, H, W, 1) float32
  in {0, 1}, 1 on bright thin structures (streaks, drops): the white top-hat of the luma
  by a disk (``element="disk"``, ``radius``) or the largest over ``orientations`` lines of
  ``line_length`` ("lines"), above ``level`` ("fixed") or Otsu's threshold ("otsu"),
  dilated by a (2 * ``dilation`` + 1)^2 square. Pixels outside ``valid`` (N, H, W, 1) are
  0 and do not affect the others. No gradient flows through it."""
  if element not in MASK_ELEMENTS:
    raise ValueError(f"mask_element must be one of {MASK_ELEMENTS}, got {element!r}")
  if threshold not in MASK_THRESHOLDS:
    raise ValueError(f"mask_threshold must be one of {MASK_THRESHOLDS}, got {threshold!r}")
  images = jax.lax.stop_gradient(images)
  ok = (
    jnp.ones(images.shape[:3] + (1,), bool) if valid is None else jax.lax.stop_gradient(valid) > 0
  )
  y = jnp.clip(luma(images), 0.0, 1.0)
  if element == "disk":
    opened = opening(y, ok, disk_offsets(radius))
  else:
    angles = np.arange(orientations) * np.pi / orientations
    opened = functools.reduce(
      jnp.minimum, [opening(y, ok, line_offsets(line_length, a)) for a in angles]
    )
  top_hat = jnp.where(ok, y - opened, 0.0)
  cut = level if threshold == "fixed" else otsu_threshold(top_hat, ok)
  mask = ok & (top_hat > cut)
  if dilation > 0:
    square = tuple(
      (dy, dx) for dy in range(-dilation, dilation + 1) for dx in range(-dilation, dilation + 1)
    )
    mask = ok & _shifted_reduce(mask, square, jnp.logical_or, False)
  return mask.astype(jnp.float32)


# --- Token rearrangement by cluster -----------------------------------------------------


def cluster_order(cluster: jax.Array, valid: jax.Array, clusters: int) -> jax.Array:
  """(N, L) cluster ids and validity -> (N, L) int32 permutation that lists the valid
  tokens by cluster id, in raster order within a cluster (a stable sort), then the invalid
  ones. The order of the valid tokens does not depend on how many invalid ones there are
  or where they are."""
  key = jnp.where(valid, cluster, clusters)
  return jnp.argsort(key, axis=-1, stable=True).astype(jnp.int32)


def gather_tokens(x: jax.Array, order: jax.Array) -> jax.Array:
  """(N, L, ...) tokens in the ``order`` of an (N, L) permutation."""
  index = order.reshape(order.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)


def scatter_tokens(x: jax.Array, order: jax.Array) -> jax.Array:
  """The inverse of ``gather_tokens``: token i of ``x`` goes back to position order[i]."""
  return jax.vmap(lambda t, o: jnp.zeros_like(t).at[o].set(t, unique_indices=True))(x, order)


# --- Attention ----------------------------------------------------------------------


def _attend(
  q: jax.Array, k: jax.Array, v: jax.Array, seen: jax.Array, bias: jax.Array | None = None
) -> jax.Array:
  """Scaled dot-product attention, ``jax.nn.dot_product_attention``'s XLA form: q, k, v
  (B, T, heads, d); ``seen`` a boolean (B, 1, 1, T) mask of the keys each query may see;
  ``bias`` (1, heads, T, T) added to the logits. Logits and softmax are float32 (for
  bfloat16 inputs too); a query that sees no key averages all values uniformly (finite,
  also in the backward pass). -> (B, T, heads, d).

  The XLA form is named rather than left to JAX because cuDNN's fused form takes only
  float16/bfloat16 and makes no promise for a query with no visible key, which whole
  windows of padding have."""
  return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=seen, implementation="xla")


def _relative_position_index(window: int) -> np.ndarray:
  """(window^2, window^2) index into Swin's (2 * window - 1)^2 relative position table."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
  coords = coords.reshape(2, -1)
  rel = coords[:, :, None] - coords[:, None, :] + window - 1
  return rel[0] * (2 * window - 1) + rel[1]


class WindowAttention(nn.Module):
  """Multi-head attention within ``window_size`` square windows, shifted by ``shift``
  pixels (Swin), with a learned relative position bias; with ``rain_branch``, beside it a
  branch that does not look at rain-masked keys. (N, H, W, C) -> (N, H, W, C), H and W
  multiples of the window."""

  features: int
  heads: int
  window_size: int = 8
  shift: int = 0
  rain_branch: bool = False
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array, rain: jax.Array | None = None) -> jax.Array:
    n, h, w, c = x.shape
    ws, s = self.window_size, self.shift
    if c != self.features or c % self.heads:
      raise ValueError(
        f"window attention over {c} channels with features={self.features}, "
        f"heads={self.heads}: features must equal C and divide by heads"
      )
    conv = functools.partial(
      pytorch_init_conv, conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype
    )
    qkv = conv(3 * c, (1, 1), name="qkv")(x)
    maps = [qkv, valid] + ([rain] if self.rain_branch else [])
    if s:  # Swin's shifted windows: boundaries at s + k * window.
      pads = ((0, 0), (ws - s, s), (ws - s, s), (0, 0))
      maps = [jnp.pad(m, pads) for m in maps]
    hp, wp = h + (ws if s else 0), w + (ws if s else 0)

    def windows(t):  # (N, Hp, Wp, D) -> (N, windows, ws * ws, D)
      t = t.reshape(n, hp // ws, ws, wp // ws, ws, t.shape[-1]).transpose(0, 1, 3, 2, 4, 5)
      return t.reshape(n, (hp // ws) * (wp // ws), ws * ws, t.shape[-1])

    qkv, key_valid = windows(maps[0]), windows(maps[1])[..., 0] > 0  # (N, nW, T)
    d, tokens = c // self.heads, ws * ws
    batch = qkv.shape[0] * qkv.shape[1]  # every window of every image
    q, k, v = (
      t.reshape(batch, tokens, self.heads, d) for t in jnp.split(qkv, 3, axis=-1)
    )  # (N * nW, T, heads, d)
    table = self.param(
      "relative_position_bias",
      nn.initializers.truncated_normal(0.02),
      ((2 * ws - 1) ** 2, self.heads),
      self.param_dtype,
    )
    bias = table.astype(jnp.float32)[_relative_position_index(ws)].transpose(2, 0, 1)[None]
    as_mask = lambda keys: keys.reshape(batch, 1, 1, tokens)
    outs = [_attend(q, k, v, as_mask(key_valid), bias)]
    if self.rain_branch:
      rainy_key = windows(maps[2])[..., 0] > 0
      clean = key_valid & ~rainy_key
      # A window whose keys are all masked attends as the unmasked branch does.
      drop = rainy_key & jnp.any(clean, axis=-1, keepdims=True)
      outs.insert(0, _attend(q, k, v, as_mask(key_valid & ~drop), bias))
    out = jnp.concatenate(outs, axis=-1)  # (N * nW, T, heads, branches * d)
    out = out.reshape(n, hp // ws, wp // ws, ws, ws, -1)
    out = out.transpose(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, -1)
    if s:
      out = out[:, ws - s : ws - s + h, ws - s : ws - s + w]
    return conv(c, (1, 1), name="project")(out)


class ClusteredAttention(nn.Module):
  """Non-local attention by pixel rearrangement: pixels sorted by their nearest learned
  centroid (cosine similarity) attend within consecutive groups of ``group_size``, then
  go back to their places. (N, H, W, C) -> (N, H, W, C)."""

  features: int
  heads: int
  clusters: int = 64
  group_size: int = 64
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    if c != self.features or c % self.heads:
      raise ValueError(
        f"clustered attention over {c} channels with features="
        f"{self.features}, heads={self.heads}: features must equal C and "
        "divide by heads"
      )
    g = self.group_size
    conv = functools.partial(
      pytorch_init_conv, conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype
    )
    centroids = self.param(
      "centroids", nn.initializers.normal(1.0), (self.clusters, c), self.param_dtype
    )
    tokens = x.reshape(n, h * w, c).astype(jnp.float32)
    ok = valid.reshape(n, h * w) > 0

    # Cosine similarity; padded pixels are zero tokens, whose plain normalisation has a NaN
    # gradient.
    similarity = (
      l2_normalize(tokens, epsilon=1e-6) @ l2_normalize(centroids, epsilon=1e-6).T
    )  # (N, L, clusters)
    cluster = jnp.argmax(similarity, axis=-1)
    temperature = self.param(
      "router_temperature", nn.initializers.constant(10.0), (), self.param_dtype
    )
    p = jnp.take_along_axis(
      jax.nn.softmax(similarity * temperature, axis=-1), cluster[..., None], axis=-1
    )  # (N, L, 1)
    self.sow("intermediates", "cluster", cluster.reshape(n, h, w))
    order = cluster_order(cluster, ok, self.clusters)

    qkv = gather_tokens(conv(3 * c, (1, 1), name="qkv")(x).reshape(n, h * w, 3 * c), order)
    seen = gather_tokens(ok, order)
    length = h * w
    padded = (length + g - 1) // g * g  # multiple * ceil, for jax.export's symbolic sizes
    qkv = jnp.pad(qkv, ((0, 0), (0, padded - length), (0, 0)))
    seen = jnp.pad(seen, ((0, 0), (0, padded - length)))
    d, batch = c // self.heads, n * (padded // g)  # every group of every image
    q, k, v = (
      t.reshape(batch, g, self.heads, d) for t in jnp.split(qkv, 3, axis=-1)
    )  # (N * groups, g, heads, d)
    out = _attend(q, k, v, seen.reshape(batch, 1, 1, g)).reshape(n, padded, c)
    out = scatter_tokens(out[:, :length], order)
    # Switch-Transformer routing in straight-through form: times 1, router gradient.
    out = out * (p / jax.lax.stop_gradient(p)).astype(out.dtype)
    return conv(c, (1, 1), name="project")(out.reshape(n, h, w, c))


def _gated_ffn(block: nn.Module) -> nn.Module:
  """Restormer's gated FFN (no spatial branch) with a DualStageNet block's fields."""
  return SpatialEnhancedFeedForward(
    features=block.features,
    expansion=block.ffn_expansion,
    spatial=False,
    layer_norm=block.layer_norm,
    conv_impl=block.conv_impl,
    dtype=block.dtype,
    param_dtype=block.param_dtype,
    name="ffn",
  )


class MaskAttentionBlock(nn.Module):
  """Stage 1: x + window attention with the rain branch, then + gated FFN."""

  features: int
  heads: int
  window_size: int
  shift: int
  ffn_expansion: float
  layer_norm: str
  conv_impl: str
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array, rain: jax.Array) -> jax.Array:
    norm = functools.partial(
      ChannelLayerNorm, self.layer_norm, dtype=self.dtype, param_dtype=self.param_dtype
    )
    common = dict(conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype)
    attention = WindowAttention(
      features=self.features,
      heads=self.heads,
      window_size=self.window_size,
      shift=self.shift,
      rain_branch=True,
      name="attention",
      **common,
    )
    x = x + attention(norm(name="norm1")(x), valid, rain)
    ffn = _gated_ffn(self)
    x = x + ffn(norm(name="norm2")(x), valid)
    return masked(x, valid)


class NonLocalBlock(nn.Module):
  """Stage 2: x + clustered attention, + shifted window attention, + gated FFN."""

  features: int
  heads: int
  window_size: int
  shift: int
  clusters: int
  group_size: int
  ffn_expansion: float
  layer_norm: str
  conv_impl: str
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array) -> jax.Array:
    norm = functools.partial(
      ChannelLayerNorm, self.layer_norm, dtype=self.dtype, param_dtype=self.param_dtype
    )
    common = dict(conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype)
    non_local = ClusteredAttention(
      features=self.features,
      heads=self.heads,
      clusters=self.clusters,
      group_size=self.group_size,
      name="non_local",
      **common,
    )
    x = x + non_local(norm(name="norm1")(x), valid)
    window = WindowAttention(
      features=self.features,
      heads=self.heads,
      window_size=self.window_size,
      shift=self.shift,
      rain_branch=False,
      name="window",
      **common,
    )
    x = x + window(norm(name="norm2")(x), valid)
    ffn = _gated_ffn(self)
    x = x + ffn(norm(name="norm3")(x), valid)
    return masked(x, valid)


class DualStageNet(NonLocalNetwork, nn.Module):
  """The dual-stage mask / non-local attention network (docs/dual_stage.md says what is
  inferred).

  Attributes:
    features: channels of both stages (48).
    heads: attention heads (3: 16 channels each).
    stage1_blocks: mask-attention blocks in stage 1 (4).
    stage2_blocks: non-local blocks in stage 2 (4).
    window_size: the attention windows' side (8); every other block shifts by half.
    clusters: learned centroids of the non-local attention (64).
    group_size: pixels per group of the sorted sequence (64, the window's pixel count).
    mask_element: "disk" or "lines", the top-hat's structuring element.
    mask_radius: the disk's radius (2: 5x5).
    mask_line_length, mask_orientations: the line elements (11 pixels, 12 angles).
    mask_threshold: "fixed" (at ``mask_level``) or "otsu" (per image).
    mask_level: the fixed top-hat threshold on luma in [0, 1] (0.05).
    mask_dilation: the mask's dilation radius (1: 3x3; 0: none).
    ffn_expansion: the gated FFN's hidden width over C (2.66).
    layer_norm: "with_bias" (Swin's LayerNorm) or "bias_free".
    remat: rematerialise each block in the backward pass.
    conv_impl: how convolutions are computed (``nasnet_jax.models.convolution``).
    dtype: computation dtype (bfloat16 for mixed precision); attention logits, softmax,
      norms, the mask and the routing stay float32, the output is float32.
  """

  features: int = 48
  heads: int = 3
  stage1_blocks: int = 4
  stage2_blocks: int = 4
  window_size: int = 8
  clusters: int = 64
  group_size: int = 64
  mask_element: str = "disk"
  mask_radius: int = 2
  mask_line_length: int = 11
  mask_orientations: int = 12
  mask_threshold: str = "fixed"
  mask_level: float = 0.05
  mask_dilation: int = 1
  ffn_expansion: float = 2.66
  layer_norm: str = "with_bias"
  remat: bool = False
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @property
  def size_multiple(self) -> int:
    """Inputs are padded to a multiple of this (the window)."""
    return self.window_size

  def _check(self) -> None:
    if self.features % self.heads:
      raise ValueError(f"features={self.features} do not divide into heads={self.heads}")
    if self.window_size < 2 or self.group_size < 1 or self.clusters < 1:
      raise ValueError(
        f"window_size={self.window_size} must be >= 2, group_size="
        f"{self.group_size} and clusters={self.clusters} >= 1"
      )
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")

  def mask(self, images: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """The stage-1 rain mask of (N, H, W, 3) images in [0, 1] -> (N, H, W, 1) {0, 1}."""
    return rain_mask(
      images,
      valid,
      element=self.mask_element,
      radius=self.mask_radius,
      line_length=self.mask_line_length,
      orientations=self.mask_orientations,
      threshold=self.mask_threshold,
      level=self.mask_level,
      dilation=self.mask_dilation,
    )

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, 3) in [0, 1] -> (N, H, W, 3) float32. ``valid`` (N, H, W, 1) marks
    the image pixels when the caller has padded (a rectangle at the top left). The
    intermediate image I1 (N, H, W, 3) is sown as "stage_outputs"/"stage1"."""
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"DualStageNet expects NHWC images with 3 channels, got shape {x.shape}")
    self._check()
    n, h, w, _ = x.shape
    image, valid = pad_to_multiple(x.astype(jnp.float32), valid, self.size_multiple)
    rain = self.mask(image, valid)
    self.sow("intermediates", "rain_mask", rain[:, :h, :w])
    conv = functools.partial(
      pytorch_init_conv, conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype
    )
    mask_block = nn.remat(MaskAttentionBlock) if self.remat else MaskAttentionBlock
    non_local_block = nn.remat(NonLocalBlock) if self.remat else NonLocalBlock
    shifts = lambda i: (self.window_size // 2) * (i % 2)  # noqa: E731
    block_fields = dict(
      features=self.features,
      heads=self.heads,
      window_size=self.window_size,
      ffn_expansion=self.ffn_expansion,
      layer_norm=self.layer_norm,
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )

    t = masked(conv(self.features, (3, 3), name="embed1")(masked(image, valid)), valid)
    for i in range(self.stage1_blocks):
      t = mask_block(shift=shifts(i), name=f"stage1_{i}", **block_fields)(t, valid, rain)
    stage1 = conv(3, (3, 3), name="output1")(t).astype(jnp.float32) + image
    self.sow("stage_outputs", "stage1", stage1[:, :h, :w])

    embedded = conv(self.features, (3, 3), name="embed2")(masked(stage1, valid))
    t = conv(self.features, (1, 1), name="fuse")(
      jnp.concatenate([t, masked(embedded, valid).astype(t.dtype)], axis=-1)
    )
    t = masked(t, valid)
    for i in range(self.stage2_blocks):
      t = non_local_block(
        shift=shifts(i),
        clusters=self.clusters,
        group_size=self.group_size,
        name=f"stage2_{i}",
        **block_fields,
      )(t, valid)
    out = conv(3, (3, 3), name="output2")(masked(t, valid)).astype(jnp.float32) + stage1
    return out[:, :h, :w]
