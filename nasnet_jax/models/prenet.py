"""PReNet: Progressive Recurrent Network (Ren, Zuo, Hu, Zhu & Meng, CVPR 2019) in Flax.

The same stage runs ``stages`` times with shared weights. Each pass sees the rainy image
beside the current estimate and refines it; a convolutional LSTM carries features from
one pass to the next. Every convolution is 3x3 with a bias and "same" zero padding::

    f_t = relu(conv0(concat[y, x_{t-1}]))                  6 -> C
    i, f, o = sigmoid(conv_{i,f,o}(concat[f_t, h_{t-1}]))  2C -> C each
    g = tanh(conv_g(concat[f_t, h_{t-1}]))
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)        (h_0 = c_0 = 0)
    r = h_t;  r = relu(relu(conv2(relu(conv1(r)))) + r)     x blocks (residual blocks)
    x_t = conv(r) + y                                      C -> 3, global residual

with ``y`` the rainy image, ``x_0 = y`` and the output ``x_T``. ``recurrent="none"`` is
the authors' PRN (``h_t = f_t``, no LSTM); ``recursive_blocks=True`` their ``_r``
variants, whose residual blocks are one block applied ``blocks`` times. The authors'
released weights are PReNet and PRN with T = 6 stages, C = 32 and 5 blocks: 168,963 and
95,107 parameters (``nasnet_jax.convert`` reads them). ``docs/prenet.md`` has the
details and the module names of the authors' files.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import (
  CONV_IMPLS,
  PYTORCH_KERNEL_INIT,
  conv_general_dilated_for,
  pytorch_bias_init,
)
from nasnet_jax.models.network import LocalNetwork, mask_outside

Dtype = Any

RECURRENT_KINDS = ("lstm", "none")


class PReNet(LocalNetwork, nn.Module):
  """The deraining network of PReNet / PRN: ``(N, H, W, 3)`` float in [0, 1] ->
  ``(N, H, W, 3)`` float32, the derained image (not clipped: the global residual can
  step slightly outside [0, 1]). Any H and W.

  Attributes:
    stages: recurrent passes T of the shared stage (the authors' ``recurrent_iter``, 6).
    blocks: residual blocks per pass (5).
    features: channels C (32).
    recurrent: "lstm" (PReNet) or "none" (PRN: no state carried between passes).
    recursive_blocks: one residual block applied ``blocks`` times (the authors' ``_r``
      variants) instead of ``blocks`` blocks of their own.
    conv_impl: how the convolutions are computed (``models.convolution``).
    dtype: computation dtype; the output is float32.
    param_dtype: parameter dtype.
  """

  stages: int = 6
  blocks: int = 5
  features: int = 32
  recurrent: str = "lstm"
  recursive_blocks: bool = False
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @property
  def receptive_field_radius(self) -> int:
    """How far (pixels per axis) an output pixel sees into the input: each pass adds its
    chain of 3x3 convolutions, conv0, the LSTM's gates (with an LSTM), two per block and
    the output conv: 13 per pass, 78 for the authors' six passes (PRN: 12, 72)."""
    per_stage = 1 + (1 if self.recurrent == "lstm" else 0) + 2 * self.blocks + 1
    return self.stages * per_stage

  def _conv(self, features: int, fan_in_channels: int, name: str) -> nn.Conv:
    """A 3x3 convolution created once and applied on every pass (shared weights)."""
    return nn.Conv(
      features,
      (3, 3),
      kernel_init=PYTORCH_KERNEL_INIT,
      bias_init=pytorch_bias_init(fan_in_channels * 9),
      conv_general_dilated=conv_general_dilated_for(self.conv_impl),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, 3) rainy image in [0, 1] -> (N, H, W, 3) derained, float32.

    ``valid`` (N, H, W, 1), 1 on image pixels and 0 on padding, makes the output on the
    valid pixels equal to running the network on the valid region alone (every
    activation and the LSTM state are zeroed outside it); it must be a rectangle.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"PReNet expects NHWC images with 3 channels, got shape {x.shape}")
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
    if self.recurrent not in RECURRENT_KINDS:
      raise ValueError(f"recurrent must be one of {RECURRENT_KINDS}, got {self.recurrent!r}")
    if self.stages < 1 or self.blocks < 1 or self.features < 1:
      raise ValueError(
        "stages, blocks and features must all be >= 1, got "
        f"{self.stages}, {self.blocks}, {self.features}"
      )
    c = self.features
    rainy = x.astype(jnp.float32)
    y = mask_outside(rainy, valid)
    conv0 = self._conv(c, 6, "input_conv")
    # "lstm_cell" is the candidate g (the authors' conv_g), not the cell state c.
    lstm = (
      {
        gate: self._conv(c, 2 * c, f"lstm_{gate}")
        for gate in ("input_gate", "forget_gate", "cell", "output_gate")
      }
      if self.recurrent == "lstm"
      else None
    )
    n_convs = 1 if self.recursive_blocks else self.blocks
    block_convs = [
      (self._conv(c, c, f"block_{j}_conv1"), self._conv(c, c, f"block_{j}_conv2"))
      for j in range(n_convs)
    ]
    output_conv = self._conv(3, c, "output_conv")

    estimate = y
    h = cell = None  # h_0 = c_0 = 0, shaped like the first features
    for _ in range(self.stages):
      f = mask_outside(nn.relu(conv0(jnp.concatenate([y, estimate], axis=-1))), valid)
      if lstm is not None:
        if h is None:
          h = cell = jnp.zeros_like(f)
        z = jnp.concatenate([f, h], axis=-1)
        i = nn.sigmoid(lstm["input_gate"](z))
        g = jnp.tanh(lstm["cell"](z))
        cell = mask_outside(nn.sigmoid(lstm["forget_gate"](z)) * cell + i * g, valid)
        h = nn.sigmoid(lstm["output_gate"](z)) * jnp.tanh(cell)
        f = h
      for j in range(self.blocks):
        conv1, conv2 = block_convs[0 if self.recursive_blocks else j]
        r = mask_outside(nn.relu(conv2(mask_outside(nn.relu(conv1(f)), valid))), valid)
        f = nn.relu(r + f)
      out = output_conv(f).astype(jnp.float32) + rainy
      estimate = mask_outside(out, valid)
    return out
