"""DDSA: the deraining Transformer with dynamic dual self-attention (Fan, Chen & Li, 2023).

Maps a rainy image (N, H, W, 3) in [0, 1], any H and W, to the derained image (float32,
not clipped). Only the paper's abstract was available: a Restormer/DRSformer U-Net whose
channel-wise attention mixes a dense branch and top-k sparse ones with learned (optionally
per-image) weights, and the spatial-enhanced FFN. What the abstract says and what is
inferred, layer by layer: docs/ddsa.md. The input is padded to ``size_multiple`` inside
the network with a valid mask, so the output on the image does not depend on a caller's
padding; attention is global, so tiles are blended, not exact.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import CONV_IMPLS, pytorch_init_conv
from nasnet_jax.models.feed_forward import SpatialEnhancedFeedForward
from nasnet_jax.models.layers import (
  ChannelLayerNorm,
  l2_normalize,
  masked,
  masked_mean,
  pad_to_multiple,
  pixel_shuffle,
  pixel_unshuffle,
  pool_valid,
  sparse_k,
  top_k_mask,
)
from nasnet_jax.models.network import NonLocalNetwork

Dtype = Any

MIXINGS = ("global", "per_image")


class DynamicDualAttention(nn.Module):
  """Channel-wise multi-head attention whose dense and top-k sparse branches are mixed
  by learned (optionally per-image) weights. (N, H, W, C) -> (N, H, W, C), C = features.

  Attributes:
    features: channels C (a multiple of ``heads``).
    heads: attention heads; each attends over d = C / heads channels.
    sparse_ratios: one sparse branch per ratio rho, keeping ceil(rho * d) logits a row.
    dense: include the dense (plain softmax) branch.
    mixing: "global" (learned branch logits) or "per_image" (plus an MLP on the pooled
      input).
  """

  features: int
  heads: int
  sparse_ratios: Sequence[float] = (1 / 2, 2 / 3, 3 / 4, 4 / 5)
  dense: bool = True
  mixing: str = "per_image"
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  def branch_keep_counts(self) -> tuple[int | None, ...]:
    """Per branch, how many logits per row it keeps (None: the dense branch, all)."""
    d = self.features // self.heads
    return ((None,) if self.dense else ()) + tuple(sparse_k(r, d) for r in self.sparse_ratios)

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    n, h, w, c = x.shape
    if c != self.features or c % self.heads:
      raise ValueError(
        f"attention over {c} channels with features={self.features}, "
        f"heads={self.heads}: features must equal C and divide by heads"
      )
    if self.mixing not in MIXINGS:
      raise ValueError(f"mixing must be one of {MIXINGS}, got {self.mixing!r}")
    counts = self.branch_keep_counts()
    if not counts:
      raise ValueError("DynamicDualAttention needs a dense branch or a sparse ratio")
    conv = functools.partial(
      pytorch_init_conv,
      conv_impl=self.conv_impl,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    qkv = masked(conv(3 * c, (1, 1), name="qkv")(x), valid)
    qkv = conv(3 * c, (3, 3), feature_group_count=3 * c, name="qkv_depthwise")(qkv)
    q, k, v = jnp.split(masked(qkv, valid), 3, axis=-1)
    d = c // self.heads

    def heads(t):  # (N, H, W, C) -> (N, heads, d, H*W)
      return t.reshape(n, h * w, self.heads, d).transpose(0, 2, 3, 1)

    # Over the pixels, as torch.nn.functional.normalize (finite gradients on a black crop).
    q, k, v = l2_normalize(heads(q)), l2_normalize(heads(k)), heads(v)
    temperature = self.param(
      "temperature", nn.initializers.ones, (self.heads, 1, 1), self.param_dtype
    )
    logits = jnp.einsum("nhdp,nhep->nhde", q, k) * temperature.astype(jnp.float32)
    maps = []
    for keep in counts:
      if keep is None or keep == d:
        maps.append(jax.nn.softmax(logits, axis=-1))
      else:
        kept = top_k_mask(logits, keep)
        maps.append(jax.nn.softmax(jnp.where(kept, logits, -jnp.inf), axis=-1))
    mix = self.param("mix_logits", nn.initializers.zeros, (len(counts),), self.param_dtype)
    mix = jnp.broadcast_to(mix.astype(jnp.float32), (n, len(counts)))
    if self.mixing == "per_image" and len(counts) > 1:
      pooled = masked_mean(x, valid)
      hidden = nn.gelu(
        nn.Dense(max(c // 4, 8), dtype=jnp.float32, param_dtype=self.param_dtype, name="mix_mlp_0")(
          pooled
        ),
        approximate=False,
      )
      mix = mix + nn.Dense(
        len(counts),
        kernel_init=nn.initializers.zeros,
        dtype=jnp.float32,
        param_dtype=self.param_dtype,
        name="mix_mlp_1",
      )(hidden)
    weights = jax.nn.softmax(mix, axis=-1)  # (N, branches)
    # Mixing the attention maps, then one product with v, equals mixing the outputs.
    attention = sum(weights[:, i, None, None, None] * m for i, m in enumerate(maps))
    self.sow("intermediates", "attention", attention)  # (N, heads, d, d), for inspection
    out = jnp.einsum("nhde,nhep->nhdp", attention.astype(v.dtype), v)
    out = out.transpose(0, 3, 1, 2).reshape(n, h, w, c)
    return conv(c, (1, 1), name="project")(out)


class TransformerBlock(nn.Module):
  """x + attention(norm(x)), then + SEFN(norm(x)); zeroed outside ``valid``."""

  features: int
  heads: int
  sparse_ratios: Sequence[float]
  dense: bool
  mixing: str
  ffn_expansion: float
  spatial_ffn: bool
  spatial_reduction: int
  layer_norm: str
  conv_impl: str
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None) -> jax.Array:
    norm = functools.partial(
      ChannelLayerNorm, self.layer_norm, dtype=self.dtype, param_dtype=self.param_dtype
    )
    common = dict(conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype)
    attention = DynamicDualAttention(
      features=self.features,
      heads=self.heads,
      sparse_ratios=tuple(self.sparse_ratios),
      dense=self.dense,
      mixing=self.mixing,
      name="attention",
      **common,
    )
    x = x + attention(norm(name="norm1")(x), valid)
    ffn = SpatialEnhancedFeedForward(
      features=self.features,
      expansion=self.ffn_expansion,
      spatial=self.spatial_ffn,
      spatial_reduction=self.spatial_reduction,
      layer_norm=self.layer_norm,
      name="ffn",
      **common,
    )
    x = x + ffn(norm(name="norm2")(x), valid)
    return masked(x, valid)


class DDSA(NonLocalNetwork, nn.Module):
  """The DDSA deraining network (docs/ddsa.md says what is inferred).

  Attributes:
    features: channels at the top level (48); level i has features * 2**i.
    blocks: transformer blocks per level, top to bottom ((4, 6, 6, 8)); the decoder
      repeats them bottom-up.
    heads: attention heads per level ((1, 2, 4, 8)).
    refinement_blocks: blocks after the decoder, at 2 * features (4, as Restormer).
    sparse_ratios: keep-ratios of the top-k branches ((1/2, 2/3, 3/4, 4/5), DRSformer's).
    dense_branch: include the dense softmax branch (the paper's "dual").
    mixing: "per_image" (dynamic, from the pooled input) or "global" branch weights.
    ffn_expansion: FFN hidden width over C (2.66).
    spatial_ffn: the SEFN's spatial branch (False: Restormer's gated FFN).
    spatial_reduction: the spatial branch runs at C / this many channels (4).
    layer_norm: "bias_free" or "with_bias".
    remat: rematerialise each transformer block in the backward pass.
    conv_impl: how convolutions are computed (``nasnet_jax.models.convolution``).
    dtype: computation dtype (bfloat16 for mixed precision); attention logits, softmax
      and norms stay float32, the output is float32.
  """

  features: int = 48
  blocks: Sequence[int] = (4, 6, 6, 8)
  heads: Sequence[int] = (1, 2, 4, 8)
  refinement_blocks: int = 4
  sparse_ratios: Sequence[float] = (1 / 2, 2 / 3, 3 / 4, 4 / 5)
  dense_branch: bool = True
  mixing: str = "per_image"
  ffn_expansion: float = 2.66
  spatial_ffn: bool = True
  spatial_reduction: int = 4
  layer_norm: str = "bias_free"
  remat: bool = False
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @property
  def size_multiple(self) -> int:
    """Inputs are padded to a multiple of this (2 ** (levels - 1), doubled for the
    SEFN's pooling at the lowest level)."""
    return 2 ** (len(self.blocks) - 1) * (2 if self.spatial_ffn else 1)

  def _check(self) -> None:
    if len(self.blocks) < 1 or len(self.blocks) != len(self.heads):
      raise ValueError(
        f"blocks {tuple(self.blocks)} and heads {tuple(self.heads)} must give one entry per level"
      )
    for level, heads in enumerate(self.heads):
      if (self.features * 2**level) % heads:
        raise ValueError(
          f"level {level}: {self.features * 2**level} channels do not divide into heads={heads}"
        )
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, 3) in [0, 1] -> (N, H, W, 3) float32. ``valid`` (N, H, W, 1) marks
    the image pixels when the caller has padded (a rectangle at the top left)."""
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"DDSA expects NHWC images with 3 channels, got shape {x.shape}")
    self._check()
    n, h, w, _ = x.shape
    x = x.astype(jnp.float32)
    image, valid = pad_to_multiple(x, valid, self.size_multiple)
    conv = functools.partial(
      pytorch_init_conv,
      conv_impl=self.conv_impl,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    block_cls = nn.remat(TransformerBlock) if self.remat else TransformerBlock

    def run_blocks(t, count, heads, v, name):
      for i in range(count):
        block = block_cls(
          features=t.shape[-1],
          heads=heads,
          sparse_ratios=tuple(self.sparse_ratios),
          dense=self.dense_branch,
          mixing=self.mixing,
          ffn_expansion=self.ffn_expansion,
          spatial_ffn=self.spatial_ffn,
          spatial_reduction=self.spatial_reduction,
          layer_norm=self.layer_norm,
          conv_impl=self.conv_impl,
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f"{name}_{i}",
        )
        t = block(t, v)
      return t

    levels = len(self.blocks)
    valids = [valid]
    for _ in range(levels - 1):
      valids.append(pool_valid(valids[-1]))
    t = masked(conv(self.features, (3, 3), name="embed")(masked(image, valid)), valid)
    skips = []
    for level in range(levels):
      t = run_blocks(
        t,
        self.blocks[level],
        self.heads[level],
        valids[level],
        f"encoder{level}" if level < levels - 1 else "latent",
      )
      if level < levels - 1:
        skips.append(t)
        t = conv(t.shape[-1] // 2, (3, 3), name=f"down{level}")(t)
        t = masked(pixel_unshuffle(t), valids[level + 1])
    for level in reversed(range(levels - 1)):
      t = pixel_shuffle(conv(t.shape[-1] * 2, (3, 3), name=f"up{level}")(t))
      t = jnp.concatenate([masked(t, valids[level]), skips[level]], axis=-1)
      if level > 0:
        t = conv(t.shape[-1] // 2, (1, 1), name=f"reduce{level}")(t)
      t = run_blocks(t, self.blocks[level], self.heads[level], valids[level], f"decoder{level}")
    t = run_blocks(t, self.refinement_blocks, self.heads[0], valid, "refinement")
    out = conv(3, (3, 3), name="output")(masked(t, valid))
    return (out.astype(jnp.float32) + image)[:, :h, :w]
