"""The contract every deraining network in ``nasnet_jax.models`` keeps.

Inference (``nasnet_jax.inference``), training (``nasnet_jax.train_lib``), export and the
benchmarks use a network only through this: they never ask which network it is. A new
network is one module that keeps the contract, an entry in ``models.NETWORKS``, and a
config (``config.model.name`` picks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from nasnet_jax.models.convolution import YNN_MIN_FEATURES

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@runtime_checkable
class DerainingNetwork(Protocol):
  """A Flax module ``(N, H, W, 3) float in [0, 1] -> (N, H, W, 3)`` derained images, of
  any size: it pads to ``size_multiple`` itself, masks the padding, and crops back.

  Attributes and properties:
    conv_impl: "auto", "cpu" or "xla": how its convolutions are computed
      (``models.convolution``).
    size_multiple: inputs are padded internally to a multiple of this (1: no padding).
    receptive_field_radius: how far, in pixels per axis, an output pixel sees into the
      input; None when the network is not local (global pooling or attention). Exact
      tiling uses it as the overlap; None makes tiles cross-fade.
    xla_cpu_ynn_fusions: whether XLA:CPU's YNNPACK fusions speed it up (False turns them
      off when it is jitted on a CPU: ``convolution.compiler_options``).
  """

  conv_impl: str

  @property
  def size_multiple(self) -> int: ...

  @property
  def receptive_field_radius(self) -> int | None: ...

  @property
  def xla_cpu_ynn_fusions(self) -> bool: ...

  def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> jax.Array: ...

  @classmethod
  def from_config(cls, fields: Mapping[str, Any]) -> DerainingNetwork:
    """The network a ``config.model`` describes (without its ``name``)."""

  @classmethod
  def default_config(cls) -> dict[str, Any]:
    """``config.model``'s fields (without ``name``) at the network's defaults."""


def module_kwargs(
  cls: type, fields: Mapping[str, Any], config_only: frozenset[str] = frozenset()
) -> dict[str, Any]:
  """``fields`` of a ``config.model`` as keyword arguments of network ``cls``.

  ``dtype`` is given as a string ("float32", "bfloat16", "float16"); lists (which a
  ConfigDict gives back for tuples) become tuples, as modules must hash. A field that is
  not an attribute of ``cls`` (nor in ``config_only``, which ``cls.from_config`` handles
  itself) is an error naming it and listing the valid ones.
  """
  kwargs = dict(fields)
  dtype = kwargs.pop("dtype", "float32")
  if dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={dtype!r} is unknown; choose one of {sorted(DTYPES)}")
  kwargs["dtype"] = DTYPES[dtype]
  attributes = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(kwargs) - attributes - config_only)
  if unknown:
    raise ValueError(
      f"config.model has fields {unknown} that {cls.__name__} does not take; "
      f"its fields are {sorted(attributes | config_only)}"
    )
  return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def config_defaults(cls: type, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
  """The ``config.model`` fields of network ``cls`` at the class's own defaults: each
  attribute but ``parent``, ``name``, ``param_dtype`` and ``leave_out``, with ``dtype`` as
  "float32". The configs take a network's defaults from here, so they live in one place."""
  fields = {}
  for field in dataclasses.fields(cls):
    if field.name in ("parent", "name", "param_dtype", *leave_out):
      continue
    fields[field.name] = field.default
  fields["dtype"] = "float32"
  return fields


class ConfiguredByFields:
  """A network whose ``config.model`` fields are its attributes: the base of
  ``LocalNetwork`` and ``NonLocalNetwork``."""

  @classmethod
  def from_config(cls, fields: Mapping[str, Any]):
    """The network of a ``config.model`` (``module_kwargs``)."""
    return cls(**module_kwargs(cls, fields))

  @classmethod
  def default_config(cls) -> dict[str, Any]:
    """``config.model``'s fields (without ``name``) at the network's defaults."""
    return config_defaults(cls)


class NonLocalNetwork(ConfiguredByFields):
  """The contract's parts that every network with image-wide attention shares, as a base
  before ``nn.Module`` (``class DDSA(NonLocalNetwork, nn.Module)``): no receptive-field
  radius (tiles are cross-faded), XLA:CPU's YNNPACK fusions on, and a config whose fields
  are the network's attributes."""

  receptive_field_radius = None

  @property
  def xla_cpu_ynn_fusions(self) -> bool:
    """XLA:CPU's YNNPACK fusions help it (``convolution.compiler_options``)."""
    return True


def mask_outside(x: jax.Array, valid: jax.Array | None) -> jax.Array:
  """Zeroes ``x`` (N, H, W, C) outside ``valid`` (N, H, W, 1; 1 inside, 0 outside), so
  that the next "same" convolution sees zeros there exactly as at the border of an image
  of the valid size. None: ``x`` as it is."""
  return x if valid is None else x * valid.astype(x.dtype)


class LocalNetwork(ConfiguredByFields):
  """The contract's parts that the convolutional networks share (NASNet, PReNet), as a
  base before ``nn.Module``: stride-1 "same" convolutions take any size as it is, and
  XLA:CPU's YNNPACK fusions help from ``YNN_MIN_FEATURES`` features on (their
  ``features`` attribute); a config's fields are the network's attributes. Each network
  still says its own ``receptive_field_radius``."""

  @property
  def size_multiple(self) -> int:
    """Any size as it is: every convolution is "same" and stride 1."""
    return 1

  @property
  def xla_cpu_ynn_fusions(self) -> bool:
    """Whether XLA:CPU's YNNPACK fusions speed it up: from ``YNN_MIN_FEATURES`` features,
    not below (``convolution.compiler_options``)."""
    return self.features >= YNN_MIN_FEATURES
