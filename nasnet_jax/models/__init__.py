"""Deraining networks. All take NHWC float images in [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import CONV_IMPLS, cpu_conv
from nasnet_jax.models.ddsa import DDSA, DynamicDualAttention
from nasnet_jax.models.dual_stage import (
  ClusteredAttention,
  DualStageNet,
  WindowAttention,
  rain_mask,
)
from nasnet_jax.models.feed_forward import SpatialEnhancedFeedForward
from nasnet_jax.models.nasnet import (
  ATTENTION_KINDS,
  INPUT_STATS,
  Block,
  NASNet,
  NeuronAttention,
  SqueezeExcitation,
  Stage,
)
from nasnet_jax.models.network import DerainingNetwork
from nasnet_jax.models.prenet import PReNet

# Every network keeps the contract of ``network.DerainingNetwork``; config.model.name
# picks one. A new network: its module, an entry here, and a config.
NETWORKS = {"nasnet": NASNet, "ddsa": DDSA, "dual_stage": DualStageNet, "prenet": PReNet}
MODEL_NAMES = tuple(NETWORKS)


def create_model(model_config: Mapping[str, Any]) -> nn.Module:
  """Builds the network a ``config.model`` describes.

  ``name`` picks the network (``MODEL_NAMES``: "nasnet", "ddsa", "dual_stage", "prenet"); the other
  fields go to its ``from_config``: its attributes, ``dtype`` as a string ("float32",
  "bfloat16"), and for NASNet ``input_normalization`` ("" or a key of ``INPUT_STATS``).
  A field the network does not have is an error naming it.
  """
  fields = dict(model_config)
  name = fields.pop("name", "nasnet")
  if name not in NETWORKS:
    raise ValueError(f"config.model.name={name!r} is unknown; choose one of {MODEL_NAMES}")
  return NETWORKS[name].from_config(fields)


def default_model_config(name: str) -> dict[str, Any]:
  """``config.model`` for network ``name`` at its own defaults (``name`` included); the
  configs start from it, so each default lives only in its module."""
  if name not in NETWORKS:
    raise ValueError(f"config.model.name={name!r} is unknown; choose one of {MODEL_NAMES}")
  return {"name": name, **NETWORKS[name].default_config()}


def init_params(
  model: nn.Module, rng: jax.Array, image_shape: tuple[int, int, int, int] = (1, 16, 16, 3)
):
  """The network's initial parameters (the "params" collection), from ``rng``.

  None of the networks' parameter shapes depend on the image size, so a small
  ``image_shape`` (NHWC) is enough. The initialisation is one jitted program that keeps
  only the parameters. On the CPU backend it is compiled without XLA's backend
  optimisations: it runs once, and optimising its unrolled random-number generation is
  most of its cost (``benchmarks/RESULTS.md``; the values agree to float rounding).
  """

  def init(key):
    return model.init(key, jnp.zeros(image_shape, jnp.float32), mutable=["params"])["params"]

  if isinstance(rng, jax.core.Tracer):  # inside a caller's jit: part of its program
    return init(rng)
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return jax.jit(init).lower(rng).compile(compiler_options=options)(rng)


__all__ = [
  "ATTENTION_KINDS",
  "Block",
  "CONV_IMPLS",
  "ClusteredAttention",
  "DDSA",
  "DerainingNetwork",
  "DualStageNet",
  "DynamicDualAttention",
  "INPUT_STATS",
  "MODEL_NAMES",
  "NETWORKS",
  "NASNet",
  "NeuronAttention",
  "PReNet",
  "SpatialEnhancedFeedForward",
  "SqueezeExcitation",
  "Stage",
  "WindowAttention",
  "cpu_conv",
  "create_model",
  "default_model_config",
  "init_params",
  "rain_mask",
]
