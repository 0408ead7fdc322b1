"""NASNet modules: parameter counts (paper Table 6) and maths against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax.models import (
  INPUT_STATS,
  Block,
  NASNet,
  NeuronAttention,
  SqueezeExcitation,
  Stage,
  create_model,
)


def count(module, shape=(1, 16, 16, 3)):
  params = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(shape))
  return sum(x.size for x in jax.tree.leaves(params))


def expected_count(stages=3, blocks=18, c=64, attention="na", fuse=True):
  """Parameter count of docs/nasnet.md's structure table, computed by hand."""
  conv = lambda k, cin, cout: k * k * cin * cout + cout
  na = conv(3, 1, c) + conv(1, c, c) if attention == "na" else 0
  if attention == "se":
    hidden = max(1, c // 16)
    na = conv(1, c, hidden) + conv(1, hidden, c)
  block = conv(3, c, c) + conv(3, 2 * c, c) + na
  stage = blocks * block + conv(3, c, c)
  fusion = conv(3, c * stages, c) + conv(1, c, c) if fuse else 0
  return conv(3, 3, c) + stages * stage + fusion + na + conv(3, c, c) + conv(3, c, 3)


def test_paper_parameter_counts():
  assert count(NASNet()) == 6_508_931
  assert count(NASNet(attention="none")) == 6_244_931


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(attention="se"),
    dict(fuse_stages=False),
    dict(stages=1),
    dict(stages=2),
    dict(stages=4),
    dict(attention="none", fuse_stages=False),
  ],
)
def test_variant_parameter_counts(kwargs):
  mapping = {"fuse_stages": "fuse"}
  expected = expected_count(**{mapping.get(k, k): v for k, v in kwargs.items()})
  assert count(NASNet(**kwargs)) == expected


def test_initialisation_is_pytorch_default():
  """Weights and biases uniform in +-1/sqrt(fan_in), as torch.nn.Conv2d starts."""
  params = NASNet(stages=1, blocks=2, features=32).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[
    "params"
  ]
  fan_ins = {
    "input_conv": 27,
    "conv1": 288,
    "conv2": 576,
    "depthwise": 9,
    "pointwise": 32,
    "tail_conv": 288,
    "fusion_conv1x1": 32,
    "post_conv2": 288,
  }
  seen = set()
  for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
    layer = path[-2].key
    if layer not in fan_ins:
      continue
    seen.add(layer)
    bound = fan_ins[layer] ** -0.5
    assert float(jnp.max(jnp.abs(x))) <= bound, (path, bound)
    if x.size >= 200:  # a uniform fills its range: std bound / sqrt(3)
      np.testing.assert_allclose(float(jnp.std(x)), bound / 3**0.5, rtol=0.15)
  assert seen == set(fan_ins)


# ---- numpy reference -----------------------------------------------------------------


def np_conv(x, kernel, bias, groups=1):
  """'same' zero-padded conv, NHWC / HWIO, by explicit shifted matrix products."""
  kh, kw = kernel.shape[:2]
  xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  n, h, w, _ = x.shape
  out = np.zeros((n, h, w, kernel.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      patch = xp[:, i : i + h, j : j + w, :]
      if groups == 1:
        out += patch @ kernel[i, j]
      else:  # depthwise
        out += patch * kernel[i, j, 0]
  return out + bias


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_na(p, x):
  a = np.maximum(np_conv(x, p["depthwise"]["kernel"], p["depthwise"]["bias"], groups=2), 0)
  return sigmoid(np_conv(a, p["pointwise"]["kernel"], p["pointwise"]["bias"])) * x


def np_block(p, x):
  o1 = np.maximum(np_conv(x, p["conv1"]["kernel"], p["conv1"]["bias"]), 0)
  o2 = np_conv(np.concatenate([x, o1], -1), p["conv2"]["kernel"], p["conv2"]["bias"])
  return np_na(p["attention"], o2) + x


def np_stage(p, x, blocks):
  h = x
  for j in range(blocks):
    h = np_block(p[f"block_{j}"], h)
  return np_conv(h, p["tail_conv"]["kernel"], p["tail_conv"]["bias"]) + x


def np_nasnet(p, x, stages, blocks):
  h = np_conv(x, p["input_conv"]["kernel"], p["input_conv"]["bias"])
  outs = []
  for i in range(stages):
    h = np_stage(p[f"stage_{i}"], h, blocks)
    outs.append(h)
  f = np_conv(np.concatenate(outs, -1), p["fusion_conv3x3"]["kernel"], p["fusion_conv3x3"]["bias"])
  f = np_conv(f, p["fusion_conv1x1"]["kernel"], p["fusion_conv1x1"]["bias"])
  f = np_na(p["fusion_attention"], f)
  y = np_conv(f, p["post_conv1"]["kernel"], p["post_conv1"]["bias"])
  y = np_conv(y, p["post_conv2"]["kernel"], p["post_conv2"]["bias"])
  return y + x


def init_np(module, x):
  params = module.init(jax.random.key(1), jnp.asarray(x, jnp.float32))["params"]
  # Non-zero biases so that they are checked too.
  params = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(2), a.shape), params)
  return params, jax.tree.map(lambda a: np.asarray(a, np.float64), params)


@pytest.fixture
def features():
  return np.random.default_rng(0).normal(size=(2, 7, 9, 6))


@pytest.mark.parametrize("impl", ["cpu", "xla"])
def test_neuron_attention_matches_hand_computation(features, impl):
  module = NeuronAttention(conv_impl=impl)
  params, np_params = init_np(module, features)
  out = module.apply({"params": params}, jnp.asarray(features, jnp.float32))
  np.testing.assert_allclose(out, np_na(np_params, features), atol=1e-5)


def test_block_matches_hand_computation(features):
  module = Block(features=6)
  params, np_params = init_np(module, features)
  out = module.apply({"params": params}, jnp.asarray(features, jnp.float32))
  np.testing.assert_allclose(out, np_block(np_params, features), atol=1e-5)


def test_stage_matches_hand_computation(features):
  module = Stage(blocks=2, features=6)
  params, np_params = init_np(module, features)
  out = module.apply({"params": params}, jnp.asarray(features, jnp.float32))
  np.testing.assert_allclose(out, np_stage(np_params, features, 2), atol=1e-4)


def test_nasnet_matches_hand_computation():
  x = np.random.default_rng(3).uniform(size=(1, 9, 11, 3))
  module = NASNet(stages=2, blocks=2, features=5)
  params, np_params = init_np(module, x)
  out = module.apply({"params": params}, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(out, np_nasnet(np_params, x, 2, 2), atol=1e-4)


def test_squeeze_excitation_is_a_channel_gate(features):
  module = SqueezeExcitation(reduction=2)
  params, np_params = init_np(module, features)
  s = features.mean(axis=(1, 2), keepdims=True)
  s = np.maximum(s @ np_params["squeeze"]["kernel"][0, 0] + np_params["squeeze"]["bias"], 0)
  s = sigmoid(s @ np_params["excite"]["kernel"][0, 0] + np_params["excite"]["bias"])
  out = module.apply({"params": params}, jnp.asarray(features, jnp.float32))
  np.testing.assert_allclose(out, s * features, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 17, 5, 3), (2, 33, 48, 3)])
def test_any_image_size(shape):
  model = NASNet(stages=1, blocks=1, features=4)
  x = jnp.zeros(shape)
  params = model.init(jax.random.key(0), x)
  assert model.apply(params, x).shape == shape


def test_remat_and_bf16_keep_the_function():
  x = jax.random.uniform(jax.random.key(0), (1, 12, 12, 3))
  base = NASNet(stages=2, blocks=2, features=8)
  params = base.init(jax.random.key(1), x)
  loss = lambda m: jax.value_and_grad(lambda p: jnp.mean(m.apply(p, x) ** 2))(params)
  v0, g0 = loss(base)
  v1, g1 = loss(NASNet(stages=2, blocks=2, features=8, remat=True))
  np.testing.assert_allclose(v0, v1, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  out16 = NASNet(stages=2, blocks=2, features=8, dtype=jnp.bfloat16).apply(params, x)
  assert out16.dtype == jnp.float32
  # What bfloat16 gives at the initialisation: 69 dB PSNR against float32 (the accelerator
  # check asks 50 dB of the paper net on a device).
  psnr = -10 * jnp.log10(jnp.mean((out16 - base.apply(params, x)) ** 2))
  assert 60 < float(psnr) < 120, float(psnr)


def test_input_normalization_adds_residual_to_normalized_input():
  mean, std = INPUT_STATS["rain100h"]
  model = create_model(
    dict(name="nasnet", stages=1, blocks=1, features=4, input_normalization="rain100h")
  )
  x = jax.random.uniform(jax.random.key(0), (1, 8, 8, 3))
  params = model.init(jax.random.key(1), x)["params"]
  zeroed = jax.tree_util.tree_map_with_path(
    lambda path, a: jnp.zeros_like(a) if "post_conv2" in jax.tree_util.keystr(path) else a, params
  )
  out = model.apply({"params": zeroed}, x)
  np.testing.assert_allclose(out, (x - jnp.asarray(mean)) / jnp.asarray(std), rtol=1e-5)


def test_bad_model_settings_are_clear_errors():
  with pytest.raises(ValueError, match="attention must be one of"):
    count(NASNet(attention="cbam"))
  with pytest.raises(ValueError, match="input_normalization"):
    create_model(dict(input_normalization="imagenet"))
  with pytest.raises(ValueError, match="3 channels"):
    NASNet(stages=1, blocks=1, features=4).init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))
