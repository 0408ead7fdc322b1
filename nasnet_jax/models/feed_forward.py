"""The transformers' feed-forward network: a gated depthwise FFN (Restormer's) with
DDSA's optional pooled spatial branch (the SEFN). Shared by DDSA and DualStageNet."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import pytorch_init_conv
from nasnet_jax.models.layers import ChannelLayerNorm, masked, pool_valid

Dtype = Any


class SpatialEnhancedFeedForward(nn.Module):
  """The SEFN: a gated depthwise FFN with a pooled spatial branch added to its gate.
  (N, H, W, C) -> (N, H, W, C); H and W even when ``spatial``."""

  features: int
  expansion: float = 2.66
  spatial: bool = True
  spatial_reduction: int = 4
  layer_norm: str = "bias_free"
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    c = self.features
    hidden = int(c * self.expansion)
    conv = functools.partial(
      pytorch_init_conv,
      conv_impl=self.conv_impl,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    y = masked(conv(2 * hidden, (1, 1), name="expand")(x), valid)
    y = conv(2 * hidden, (3, 3), feature_group_count=2 * hidden, name="depthwise")(y)
    x1, x2 = jnp.split(y, 2, axis=-1)
    if self.spatial:
      n, h, w, _ = x.shape
      s = masked(x, valid).reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
      coarse = None if valid is None else pool_valid(valid)
      width = max(c // self.spatial_reduction, 1)
      for i in range(2):
        s = conv(width, (3, 3), name=f"spatial_conv{i}")(masked(s, coarse))
        s = nn.relu(
          ChannelLayerNorm(
            self.layer_norm, dtype=self.dtype, param_dtype=self.param_dtype, name=f"spatial_norm{i}"
          )(s)
        )
      s = jnp.repeat(jnp.repeat(s, 2, axis=1), 2, axis=2)
      x1 = x1 + conv(hidden, (1, 1), name="spatial_to_gate")(s)
    y = nn.gelu(x1, approximate=False) * x2
    return conv(c, (1, 1), name="project")(y)
