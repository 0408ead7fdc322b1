"""Deraining networks. All take NHWC float images in [0, 1]."""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from nasnet_jax.models.convolution import CONV_IMPLS, cpu_conv
from nasnet_jax.models.nasnet import (ATTENTION_KINDS, Block, NASNet, NeuronAttention,
                                      SqueezeExcitation, Stage)

# The NASNet authors' per-dataset input statistics (design note), (mean RGB, std RGB).
INPUT_STATS = {
    "mpid_streak": ((0.47748442, 0.44561987, 0.40421578), (0.24147542, 0.23230714, 0.23012931)),
    "mpid_drop": ((0.50788142, 0.5181989, 0.484861), (0.18620518, 0.18312409, 0.19519102)),
    "mpid_mist": ((0.39551503, 0.3972878, 0.3676113), (0.14311445, 0.13827545, 0.1329295)),
    "spa_real": ((0.37963131, 0.37317694, 0.34395947), (0.14067527, 0.13811357, 0.1289146)),
    "rain100h": ((0.28889797, 0.29333464, 0.26457639), (0.35875455, 0.36073939, 0.33314634)),
    "rain100l": ((0.20238657, 0.20641472, 0.17443697), (0.27103779, 0.2704343, 0.23743652)),
    "raincityscapes": ((0.39394617, 0.44335372, 0.40406548), (0.14550411, 0.15230632, 0.15129043)),
}

MODEL_NAMES = ("nasnet",)
LEGACY_DEPTHWISE_IMPLS = {"auto": "auto", "shifted": "cpu", "grouped": "xla"}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def create_model(model_config: Mapping[str, Any]) -> nn.Module:
  """Builds the network a ``config.model`` describes.

  Fields: ``name`` ("nasnet"), ``stages``, ``blocks``, ``features``, ``attention``,
  ``fuse_stages``, ``input_normalization`` ("" for none, or a key of ``INPUT_STATS``),
  ``remat``, ``dtype`` ("float32" / "bfloat16"), ``conv_impl`` ("auto", "cpu", "xla").
  The older field ``depthwise_impl`` (in configs saved before ``conv_impl``) is read as
  ``conv_impl``: "shifted" -> "cpu", "grouped" -> "xla".
  """
  cfg = dict(model_config)
  legacy = cfg.pop("depthwise_impl", None)
  if legacy is not None and "conv_impl" not in cfg:
    cfg["conv_impl"] = LEGACY_DEPTHWISE_IMPLS.get(legacy, legacy)
  name = cfg.pop("name", "nasnet")
  if name not in MODEL_NAMES:
    raise ValueError(f"config.model.name={name!r} is unknown; choose one of {MODEL_NAMES}")
  norm = cfg.pop("input_normalization", "") or ""
  if norm and norm not in INPUT_STATS:
    raise ValueError(f"config.model.input_normalization={norm!r} is unknown; use '' or "
                     f"one of {sorted(INPUT_STATS)}")
  mean, std = INPUT_STATS[norm] if norm else (None, None)
  dtype = cfg.pop("dtype", "float32")
  if dtype not in _DTYPES:
    raise ValueError(f"config.model.dtype={dtype!r} is unknown; choose one of {sorted(_DTYPES)}")
  return NASNet(input_mean=mean, input_std=std, dtype=_DTYPES[dtype], **cfg)


__all__ = ["ATTENTION_KINDS", "Block", "CONV_IMPLS", "INPUT_STATS", "MODEL_NAMES", "NASNet",
           "NeuronAttention", "SqueezeExcitation", "Stage", "cpu_conv", "create_model"]
