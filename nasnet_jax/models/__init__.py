"""Deraining networks. All take NHWC float images in [0, 1]."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import CONV_IMPLS, cpu_conv
from nasnet_jax.models.ddsa import DDSA, DynamicDualAttention, SpatialEnhancedFeedForward
from nasnet_jax.models.dual_stage import (ClusteredAttention, DualStageNet, WindowAttention,
                                          rain_mask)
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

MODEL_CLASSES = {"nasnet": NASNet, "ddsa": DDSA, "dual_stage": DualStageNet}
MODEL_NAMES = tuple(MODEL_CLASSES)
LEGACY_DEPTHWISE_IMPLS = {"auto": "auto", "shifted": "cpu", "grouped": "xla"}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def create_model(model_config: Mapping[str, Any]) -> nn.Module:
  """Builds the network a ``config.model`` describes.

  ``name`` picks the network (``MODEL_NAMES``: "nasnet", "ddsa", "dual_stage"); every
  other field is an attribute of its class (``NASNet``, ``DDSA``, ``DualStageNet``), except ``dtype`` ("float32" /
  "bfloat16"), given as a string, and for NASNet ``input_normalization`` ("" for none,
  or a key of ``INPUT_STATS``). A field the network does not have is an error naming it.
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
  dtype = cfg.pop("dtype", "float32")
  if dtype not in _DTYPES:
    raise ValueError(f"config.model.dtype={dtype!r} is unknown; choose one of {sorted(_DTYPES)}")
  cfg["dtype"] = _DTYPES[dtype]
  if name == "nasnet":
    norm = cfg.pop("input_normalization", "") or ""
    if norm and norm not in INPUT_STATS:
      raise ValueError(f"config.model.input_normalization={norm!r} is unknown; use '' or "
                       f"one of {sorted(INPUT_STATS)}")
    cfg["input_mean"], cfg["input_std"] = INPUT_STATS[norm] if norm else (None, None)
  cls = MODEL_CLASSES[name]
  fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(cfg) - fields)
  if unknown:
    raise ValueError(f"config.model has fields {unknown} that {cls.__name__} does not take; "
                     f"its fields are {sorted(fields)}")
  for key, value in cfg.items():   # ConfigDict lists come back as lists; modules hash
    if isinstance(value, list):
      cfg[key] = tuple(value)
  return cls(**cfg)


def init_params(model: nn.Module, rng: jax.Array,
                image_shape: tuple[int, int, int, int] = (1, 16, 16, 3)):
  """The network's initial parameters (the "params" collection), from ``rng``.

  None of the networks' parameter shapes depend on the image size, so a small
  ``image_shape`` (NHWC) is enough. The initialisation is one jitted program that keeps
  only the parameters. On the CPU backend it is compiled without XLA's backend
  optimisations: it runs once, and optimising its unrolled random-number generation is
  most of its cost (a tiny DDSA: 15 s with them, 6 s without; the values agree to float
  rounding, 1e-7).
  """
  def init(key):
    return model.init(key, jnp.zeros(image_shape, jnp.float32), mutable=["params"])["params"]
  if isinstance(rng, jax.core.Tracer):   # inside a caller's jit: part of its program
    return init(rng)
  options = ({"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu"
             else None)
  return jax.jit(init).lower(rng).compile(compiler_options=options)(rng)


__all__ = ["ATTENTION_KINDS", "Block", "CONV_IMPLS", "ClusteredAttention", "DDSA",
           "DualStageNet", "DynamicDualAttention", "INPUT_STATS", "MODEL_CLASSES",
           "MODEL_NAMES", "NASNet", "NeuronAttention", "SpatialEnhancedFeedForward",
           "SqueezeExcitation", "Stage", "WindowAttention", "cpu_conv", "create_model",
           "init_params", "rain_mask"]
