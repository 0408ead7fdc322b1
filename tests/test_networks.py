"""The contract every network keeps (``models.network.DerainingNetwork``), checked for
each: the declared properties, config construction, finite gradients at any size; and a
fourth network added as a user would."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax import inference, models
from nasnet_jax.models import (
  DDSA,
  DerainingNetwork,
  DualStageNet,
  NASNet,
  PReNet,
  init_params,
  layers,
  network,
)

# Small, but every part of each network (the padded paths included).
TINY_NETWORKS = {
  "nasnet": lambda: NASNet(stages=2, blocks=1, features=8),
  "ddsa": lambda: DDSA(
    features=8, blocks=(1, 1), heads=(1, 2), refinement_blocks=0, sparse_ratios=(1 / 2, 3 / 4)
  ),
  "dual_stage": lambda: DualStageNet(
    features=8, heads=2, stage1_blocks=2, stage2_blocks=2, clusters=4, group_size=16
  ),
  "prenet": lambda: PReNet(stages=2, blocks=1, features=8),
}


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_gradients_are_finite_at_sizes_that_need_padding(name):
  """13 x 19 is a multiple of no network's window or level: the padded path's backward
  pass (a normalisation of all-zero padding, a fully masked softmax) must not give NaN,
  and the gradient must reach every parameter. The second image is black: whole rows of
  DDSA's queries and keys are then zero, and their L2 normalisation must not give NaN
  either (the synthetic demo once diverged at step ~300 on a black crop)."""
  model = TINY_NETWORKS[name]()
  params = init_params(model, jax.random.key(1))
  x = jnp.stack([jax.random.uniform(jax.random.key(0), (13, 19, 3)), jnp.zeros((13, 19, 3))])

  def loss(p):
    out = model.apply({"params": p}, x)
    return jnp.mean(jnp.abs(out - x))

  grads = jax.jit(jax.grad(loss))(params)
  bad = [
    jax.tree_util.keystr(path)
    for path, g in jax.tree_util.tree_leaves_with_path(grads)
    if not bool(jnp.all(jnp.isfinite(g)))
  ]
  assert not bad, f"{name}: non-finite gradients in {bad[:5]}"
  assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grads))) > 0


def test_forward_and_reverse_mode_agree():
  """jax.jvp works through NASNet (on CPU too, where its convolutions take their CPU
  forms) and agrees with jax.vjp: <J t, c> = <t, J^T c>. The transformers build their
  convolutions the same way (pytorch_init_conv) but take 40-80 s to compile here; the
  convolution forms are checked under every transformation in tests/test_convolution.py."""
  model = TINY_NETWORKS["nasnet"]()
  params = init_params(model, jax.random.key(1))
  x = jax.random.uniform(jax.random.key(0), (1, 13, 19, 3))
  f = lambda p, x: model.apply({"params": p}, x)
  tangent = jax.tree.map(
    lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape), (params, x)
  )
  _, forward = jax.jit(lambda t: jax.jvp(f, (params, x), t))(tangent)
  cotangent = jnp.sin(jnp.arange(forward.size, dtype=forward.dtype)).reshape(forward.shape)
  reverse = jax.jit(lambda c: jax.vjp(f, params, x)[1](c))(cotangent)
  lhs = float(jnp.vdot(forward, cotangent))
  rhs = float(
    sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(tangent), jax.tree.leaves(reverse)))
  )
  np.testing.assert_allclose(lhs, rhs, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_every_network_keeps_the_declared_contract(name):
  model = TINY_NETWORKS[name]()
  assert isinstance(model, DerainingNetwork)
  assert models.NETWORKS[name] is type(model)
  assert model.size_multiple >= 1 and isinstance(model.xla_cpu_ynn_fusions, bool)
  radius = model.receptive_field_radius
  assert radius is None or radius > 0
  # Its config construction lives with it: a config.model round-trips.
  fields = {f: getattr(model, f) for f in ("features",)}
  assert models.create_model({"name": name, **fields}).features == model.features


class _MeanShift(nn.Module):
  """A fourth network, as a user would add one: a module that keeps the contract."""

  conv_impl: str = "xla"
  dtype: object = None
  size_multiple = 4
  receptive_field_radius = 1
  xla_cpu_ynn_fusions = True

  @classmethod
  def from_config(cls, fields):
    return cls(**network.module_kwargs(cls, fields))

  @classmethod
  def default_config(cls):
    return network.config_defaults(cls)

  @nn.compact
  def __call__(self, x, valid=None):
    h, w = x.shape[1:3]
    padded, _ = layers.pad_to_multiple(x, valid, self.size_multiple)
    y = nn.Conv(3, (3, 3))(padded)
    return x + y[:, :h, :w]


@pytest.mark.parametrize("name", sorted(models.NETWORKS))
def test_the_default_config_is_the_networks_own_defaults(name):
  """configs/ take each network's defaults from its module: one place for each."""
  fields = models.default_model_config(name)
  assert fields["name"] == name and fields["dtype"] == "float32"
  model = models.create_model(fields)
  defaults = models.NETWORKS[name]()
  for field in dataclasses.fields(defaults):
    if field.name not in ("parent", "name", "dtype"):  # dtype None computes in float32
      assert getattr(model, field.name) == getattr(defaults, field.name), field.name
  with pytest.raises(ValueError, match="config.model.name='unet' is unknown"):
    models.default_model_config("unet")


def test_a_new_network_needs_only_its_module_and_an_entry(monkeypatch):
  monkeypatch.setitem(models.NETWORKS, "mean_shift", _MeanShift)
  model = models.create_model({"name": "mean_shift", "dtype": "float32"})
  assert isinstance(model, DerainingNetwork)
  assert models.default_model_config("mean_shift") == {
    "name": "mean_shift",
    "conv_impl": "xla",
    "dtype": "float32",
  }
  params = init_params(model, jax.random.key(0))
  image = np.random.default_rng(0).random((13, 19, 3), dtype=np.float32)
  out = inference.Derainer(model, params, tile=8)(image)  # exact tiles: radius 1
  whole = inference.Derainer(model, params)(image)
  assert out.shape == image.shape
  np.testing.assert_allclose(out, whole, atol=1e-5)
  with pytest.raises(ValueError, match=r"fields \['depth'\] that _MeanShift does not take"):
    models.create_model({"name": "mean_shift", "depth": 3})
