"""NASNet: Neuron Attention Stage-by-Stage Net (Qin & Wang) in Flax linen.

All modules take and return NHWC arrays. The network maps a rainy image with values in
[0, 1] (float, shape ``(N, H, W, 3)``, any H and W) to the derained image in the same
range (not clipped: the global residual can step slightly outside [0, 1]).

Structure (from the paper and the authors' code; every convolution has a bias and
"same" padding)::

    NeuronAttention(x) = sigmoid(conv1x1(relu(depthwise3x3(x)))) * x
    Block(x)           = NA(o2) * o2 + x,   o2 = conv3x3(concat[x, relu(conv3x3(x))])
    Stage(x)           = conv3x3(Block^blocks(x)) + x
    NASNet(x)          = post(NA(fusion(concat[stage outputs]))) + x

Parameter counts (paper Table 6): 6,508,931 for the default ``NASNet()`` and 6,244,931
with ``attention="none"``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import CONV_IMPLS
from nasnet_jax.models.convolution import pytorch_init_conv as _conv
from nasnet_jax.models.network import LocalNetwork, config_defaults, mask_outside, module_kwargs

Dtype = Any

# The NASNet authors' per-dataset input statistics, (mean RGB, std RGB): their data loaders
# normalise the input with these, so their weights expect it (``input_normalization``).
INPUT_STATS = {
  "mpid_streak": ((0.47748442, 0.44561987, 0.40421578), (0.24147542, 0.23230714, 0.23012931)),
  "mpid_drop": ((0.50788142, 0.5181989, 0.484861), (0.18620518, 0.18312409, 0.19519102)),
  "mpid_mist": ((0.39551503, 0.3972878, 0.3676113), (0.14311445, 0.13827545, 0.1329295)),
  "spa_real": ((0.37963131, 0.37317694, 0.34395947), (0.14067527, 0.13811357, 0.1289146)),
  "rain100h": ((0.28889797, 0.29333464, 0.26457639), (0.35875455, 0.36073939, 0.33314634)),
  "rain100l": ((0.20238657, 0.20641472, 0.17443697), (0.27103779, 0.2704343, 0.23743652)),
  "raincityscapes": ((0.39394617, 0.44335372, 0.40406548), (0.14550411, 0.15230632, 0.15129043)),
}

ATTENTION_KINDS = ("na", "se", "none")


class NeuronAttention(nn.Module):
  """Neuron attention (paper eqs. 4-5): a per-neuron sigmoid gate.

  ``gate = sigmoid(conv1x1(relu(depthwise3x3(x))))`` with the same shape as ``x``;
  the module returns ``gate * x``. (The authors' PyTorch class returns the gate and the
  caller multiplies; the parameters are the same: 640 + 4,160 = 4,800 at C = 64.)

  Attributes:
    kernel_size: spatial size of the depthwise convolution.
    conv_impl: how the convolutions are computed: "auto" (XLA:CPU's fastest forms on CPU,
      e.g. the depthwise conv as fused shifted multiply-adds; XLA's convolutions
      elsewhere), "cpu" or "xla". All give the same result and parameters.
  """

  kernel_size: int = 3
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, C) features -> (N, H, W, C) gated features.

    ``valid`` is accepted for a common gate signature and unused: the gate is local, and
    ``x`` is zero outside the valid region already (see ``NASNet``).
    """
    del valid
    channels = x.shape[-1]
    a = _conv(
      channels,
      (self.kernel_size, self.kernel_size),
      feature_group_count=channels,
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="depthwise",
    )(x)
    a = nn.relu(a)
    a = _conv(
      channels,
      (1, 1),
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="pointwise",
    )(a)
    return nn.sigmoid(a) * x


class SqueezeExcitation(nn.Module):
  """Squeeze-and-excitation channel gate (the paper's "SENet" ablation).

  ``gate = sigmoid(conv1x1(relu(conv1x1(mean_hw(x)))))`` of shape (N, 1, 1, C);
  returns ``gate * x``. The NASNet paper does not state the reduction ratio; 16 is the
  SE paper's default.
  """

  reduction: int = 16
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, C) -> (N, H, W, C); the mean is over ``valid`` (N, H, W, 1) if given."""
    channels = x.shape[-1]
    hidden = max(1, channels // self.reduction)
    if valid is None:
      s = jnp.mean(x, axis=(1, 2), keepdims=True)
    else:
      s = jnp.sum(x * valid.astype(x.dtype), axis=(1, 2), keepdims=True) / jnp.maximum(
        jnp.sum(valid, axis=(1, 2), keepdims=True), 1
      ).astype(x.dtype)
    s = nn.relu(
      _conv(
        hidden,
        (1, 1),
        conv_impl=self.conv_impl,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name="squeeze",
      )(s)
    )
    s = _conv(
      channels,
      (1, 1),
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="excite",
    )(s)
    return nn.sigmoid(s) * x


def _attention(kind: str, name: str, conv_impl: str, dtype, param_dtype):
  """The feature gate for ``kind``: a module, or the identity for "none"."""
  if kind == "na":
    return NeuronAttention(conv_impl=conv_impl, dtype=dtype, param_dtype=param_dtype, name=name)
  if kind == "se":
    return SqueezeExcitation(conv_impl=conv_impl, dtype=dtype, param_dtype=param_dtype, name=name)
  if kind == "none":
    return lambda x, valid=None: x
  raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")


class Block(nn.Module):
  """Local residual block: ``NA(o2) * o2 + x``.

  ``o1 = relu(conv3x3(x))``; ``o2 = conv3x3(concat[x, o1])`` (2C -> C, no activation).
  Input and output are (N, H, W, C) with C = ``features``.
  """

  features: int = 64
  attention: str = "na"
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, C), zero outside ``valid`` (N, H, W, 1) if given (see ``NASNet``)."""
    conv = functools.partial(
      _conv,
      self.features,
      (3, 3),
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
    )
    o1 = mask_outside(nn.relu(conv(name="conv1")(x)), valid)
    o2 = mask_outside(conv(name="conv2")(jnp.concatenate([x, o1], axis=-1)), valid)
    gate = _attention(self.attention, "attention", self.conv_impl, self.dtype, self.param_dtype)
    return gate(o2, valid) + x


class Stage(nn.Module):
  """A stage with a long skip: ``conv3x3(Block^blocks(x)) + x``.

  Input and output are (N, H, W, C) with C = ``features``. With ``remat`` each block's
  activations are recomputed in the backward pass instead of stored.
  """

  blocks: int = 18
  features: int = 64
  attention: str = "na"
  conv_impl: str = "auto"
  remat: bool = False
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, C), zero outside ``valid`` (N, H, W, 1) if given (see ``NASNet``)."""
    block_cls = nn.remat(Block) if self.remat else Block
    h = x
    for j in range(self.blocks):
      h = block_cls(
        features=self.features,
        attention=self.attention,
        conv_impl=self.conv_impl,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"block_{j}",
      )(h, valid)
    h = _conv(
      self.features,
      (3, 3),
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="tail_conv",
    )(h)
    return mask_outside(h, valid) + x


class NASNet(LocalNetwork, nn.Module):
  """The full deraining network.

  Attributes:
    stages: number of stages run in series (paper default 3; Table 8 uses 1-4).
    blocks: blocks per stage (18).
    features: channels C (64).
    attention: "na" (neuron attention), "se" (squeeze-and-excitation, reduction 16) or
      "none" (the paper's PlainNet).
    fuse_stages: concatenate all stage outputs and fuse them (conv3x3 C*stages -> C,
      conv1x1 C -> C). False is the paper's DirectNet: the last stage feeds the final
      attention directly.
    input_mean, input_std: optional per-channel statistics (3 values each). When given,
      the input is normalised as the authors do, ``(x - mean) / std``, and the global
      residual is added to the normalised input; the target stays in [0, 1].
    remat: rematerialise each block in the backward pass (less memory, more compute).
    conv_impl: how the convolutions are computed (see ``NeuronAttention``).
    dtype: computation dtype (e.g. ``jnp.bfloat16`` for mixed precision); the output
      is returned as float32.
    param_dtype: parameter dtype.
  """

  stages: int = 3
  blocks: int = 18
  features: int = 64
  attention: str = "na"
  fuse_stages: bool = True
  input_mean: Sequence[float] | None = None
  input_std: Sequence[float] | None = None
  remat: bool = False
  conv_impl: str = "auto"
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @classmethod
  def from_config(cls, fields: Mapping[str, Any]) -> NASNet:
    """The network of a ``config.model`` (``models.network.module_kwargs``), where
    ``input_normalization`` ("" for none, or a key of ``INPUT_STATS``) stands for
    ``input_mean`` and ``input_std``."""
    fields = dict(fields)
    norm = fields.pop("input_normalization", "") or ""
    if norm and norm not in INPUT_STATS:
      raise ValueError(
        f"config.model.input_normalization={norm!r} is unknown; use '' or "
        f"one of {sorted(INPUT_STATS)}"
      )
    if norm:
      fields["input_mean"], fields["input_std"] = INPUT_STATS[norm]
    return cls(**module_kwargs(cls, fields))

  @classmethod
  def default_config(cls) -> dict[str, Any]:
    """``config.model``'s fields (without ``name``) at the network's defaults, with
    ``input_normalization`` ("") in place of ``input_mean`` and ``input_std``."""
    fields = config_defaults(cls, leave_out=("input_mean", "input_std"))
    return {**fields, "input_normalization": ""}

  @property
  def receptive_field_radius(self) -> int | None:
    """How far (in pixels, per axis) an output pixel sees into the input; None if the
    network is not local (the SE gate pools the whole image).

    Each 3x3 convolution on the path adds 1: the input conv, per block conv1, conv2 and
    the neuron attention's depthwise conv, per stage its tail conv, the fusion 3x3 conv
    and attention, and the two post convs. 170 for the default (3 stages, 18 blocks).
    """
    if self.attention == "se":
      return None
    gate = 1 if self.attention == "na" else 0
    per_stage = self.blocks * (2 + gate) + 1
    fusion = 1 if self.fuse_stages else 0
    return 1 + self.stages * per_stage + fusion + gate + 2

  @nn.compact
  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array:
    """x: (N, H, W, 3) rainy image in [0, 1] -> (N, H, W, 3) derained, float32.

    ``valid`` (N, H, W, 1), 1 on image pixels and 0 on padding, makes the output on the
    valid pixels equal to running the network on the valid region alone (every
    activation is zeroed outside it, as "same" padding would see at the image border):
    so images padded to a common shape, or tiles cut from a large image, give exactly the
    whole-image result. The valid region must be a rectangle.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"NASNet expects NHWC images with 3 channels, got shape {x.shape}")
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
    if self.attention not in ATTENTION_KINDS:
      raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
    if self.stages < 1 or self.blocks < 1 or self.features < 1:
      raise ValueError(
        "stages, blocks and features must all be >= 1, got "
        f"{self.stages}, {self.blocks}, {self.features}"
      )
    x = x.astype(jnp.float32)
    if (self.input_mean is None) != (self.input_std is None):
      raise ValueError("input_mean and input_std must be given together")
    if self.input_mean is not None:
      mean = jnp.asarray(self.input_mean, jnp.float32)
      std = jnp.asarray(self.input_std, jnp.float32)
      x = (x - mean) / std
    conv = functools.partial(
      _conv, self.features, conv_impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype
    )
    h = mask_outside(conv((3, 3), name="input_conv")(mask_outside(x, valid)), valid)
    outputs = []
    for i in range(self.stages):
      stage = Stage(
        blocks=self.blocks,
        features=self.features,
        attention=self.attention,
        conv_impl=self.conv_impl,
        remat=self.remat,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"stage_{i}",
      )
      h = stage(h, valid)
      outputs.append(h)
    if self.fuse_stages:
      f = conv((3, 3), name="fusion_conv3x3")(jnp.concatenate(outputs, axis=-1))
      f = mask_outside(conv((1, 1), name="fusion_conv1x1")(f), valid)
    else:
      f = outputs[-1]
    f = _attention(
      self.attention, "fusion_attention", self.conv_impl, self.dtype, self.param_dtype
    )(f, valid)
    y = mask_outside(conv((3, 3), name="post_conv1")(f), valid)
    y = _conv(
      3,
      (3, 3),
      conv_impl=self.conv_impl,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="post_conv2",
    )(y)
    return y.astype(jnp.float32) + x
