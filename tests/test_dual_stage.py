"""DualStageNet: the morphological rain mask, masked and shifted window attention, the
cluster sort, any size with padding-independent output, bf16/remat, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from nasnet_jax import inference, train_lib
from nasnet_jax.models import DualStageNet, WindowAttention, create_model, dual_stage, init_params

TINY = dict(features=8, heads=2, stage1_blocks=2, stage2_blocks=2, clusters=4, group_size=16)
# For the tests that compile a gradient several times: every part, one block per stage.
ONE_BLOCK_EACH = dict(TINY, stage1_blocks=1, stage2_blocks=1)


@pytest.fixture(scope="module")
def tiny():
  model = DualStageNet(**TINY)
  return model, init_params(model, jax.random.PRNGKey(1))


def streak_image(seed=0, size=(48, 64)):
  """A smooth background with thin bright streaks drawn on it; (image, streak pixels)."""
  h, w = size
  yy, xx = np.mgrid[0:h, 0:w]
  background = 0.3 + 0.2 * np.sin(yy / 15.0) * np.cos(xx / 20.0)
  streaks = np.zeros((h, w), bool)
  rng = np.random.default_rng(seed)
  length = min(16, h // 2)
  for _ in range(6):
    y0, x0 = rng.integers(0, h - length), rng.integers(0, w - 8)
    slope = rng.uniform(0.2, 0.5)
    for t in range(length):
      streaks[y0 + t, int(x0 + slope * t)] = True
  image = background + 0.25 * streaks
  return np.repeat(image[None, ..., None], 3, axis=-1).astype(np.float32), streaks


@pytest.mark.parametrize(
  "kwargs", [dict(), dict(element="lines"), dict(threshold="otsu", dilation=0)]
)
def test_the_morphological_mask_finds_drawn_streaks(kwargs):
  image, streaks = streak_image()
  mask = np.asarray(dual_stage.rain_mask(jnp.asarray(image), **kwargs))[0, ..., 0] > 0
  assert mask[streaks].mean() > 0.95
  # Away from the streaks (beyond the dilation) the smooth background is left alone.
  near = np.asarray(
    dual_stage._shifted_reduce(  # pylint: disable=protected-access
      jnp.asarray(streaks)[None, ..., None],
      tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)),
      jnp.logical_or,
      False,
    )
  )[0, ..., 0]
  assert mask[~near].mean() < 0.01


def test_the_mask_ignores_padding():
  image, _ = streak_image(seed=1, size=(21, 30))
  mask = dual_stage.rain_mask(jnp.asarray(image), threshold="otsu")
  canvas = jnp.ones((1, 40, 48, 3)).at[:, :21, :30].set(image)  # bright padding
  valid = jnp.zeros((1, 40, 48, 1)).at[:, :21, :30].set(1.0)
  padded = dual_stage.rain_mask(canvas, valid, threshold="otsu")
  np.testing.assert_array_equal(padded[:, :21, :30], mask)
  assert float(padded[:, 21:].max()) == 0.0


def test_the_cluster_sort_is_a_permutation_undone_exactly():
  rng = np.random.default_rng(0)
  cluster = jnp.asarray(rng.integers(0, 5, (2, 40)))
  valid = jnp.asarray(rng.random((2, 40)) < 0.8)
  order = dual_stage.cluster_order(cluster, valid, clusters=5)
  for b in range(2):
    assert sorted(np.asarray(order[b]).tolist()) == list(range(40))
    ids = np.where(np.asarray(valid[b]), np.asarray(cluster[b]), 5)[np.asarray(order[b])]
    assert (np.diff(ids) >= 0).all()  # valid tokens by cluster, invalid ones last
    for c in range(6):  # stable: raster order within a cluster
      assert (np.diff(np.asarray(order[b])[ids == c]) > 0).all()
  tokens = jnp.asarray(rng.normal(size=(2, 40, 3)), jnp.float32)
  sorted_tokens = dual_stage.gather_tokens(tokens, order)
  np.testing.assert_array_equal(dual_stage.scatter_tokens(sorted_tokens, order), tokens)


def test_masked_keys_get_no_attention_unless_the_whole_window_is_masked():
  attn = WindowAttention(features=4, heads=1, window_size=4, rain_branch=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, 4))
  valid = jnp.ones((1, 4, 4, 1))
  rain = jnp.zeros((1, 4, 4, 1)).at[0, 1:3, 2].set(1.0)
  params = attn.init(jax.random.PRNGKey(1), x, valid, rain)["params"]
  # Keep the masked branch's output alone (its channels come first in the projection).
  kernel = params["project"]["kernel"]
  masked_only = {**params, "project": {**params["project"], "kernel": kernel.at[:, :, 4:].set(0.0)}}
  plain_only = {**params, "project": {**params["project"], "kernel": kernel.at[:, :, :4].set(0.0)}}
  y = attn.apply({"params": masked_only}, x, valid, rain)
  changed = x.at[0, 1:3, 2].add(5.0)  # only the masked pixels change
  y_changed = attn.apply({"params": masked_only}, changed, valid, rain)
  clean = np.asarray(rain[0, ..., 0]) == 0
  np.testing.assert_allclose(np.asarray(y_changed)[0][clean], np.asarray(y)[0][clean], atol=1e-6)
  assert not np.allclose(
    attn.apply({"params": plain_only}, changed, valid, rain)[0][clean],
    attn.apply({"params": plain_only}, x, valid, rain)[0][clean],
  )
  # A window whose keys are all masked attends as if none were.
  np.testing.assert_allclose(
    attn.apply({"params": masked_only}, x, valid, jnp.ones_like(rain)),
    attn.apply({"params": masked_only}, x, valid, 0 * rain),
    atol=1e-6,
  )


def test_shifted_windows_are_swins_cyclic_shift_with_its_region_mask():
  attn = WindowAttention(features=4, heads=2, window_size=4, shift=2)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 8, 12, 4))
  valid = jnp.ones((1, 8, 12, 1))
  params = attn.init(jax.random.PRNGKey(1), x, valid)["params"]
  y = attn.apply({"params": params}, x, valid)
  # Swin: roll by -shift, label the three regions per axis, attend within windows
  # among equal labels, roll back.
  ws, s, heads, d = 4, 2, 2, 2
  qkv = x @ params["qkv"]["kernel"][0, 0] + params["qkv"]["bias"]
  rolled = jnp.roll(qkv, (-s, -s), axis=(1, 2))
  label = np.zeros((8, 12), int)
  for i, rows in enumerate((slice(0, 8 - ws), slice(8 - ws, 8 - s), slice(8 - s, 8))):
    for j, cols in enumerate((slice(0, 12 - ws), slice(12 - ws, 12 - s), slice(12 - s, 12))):
      label[rows, cols] = 3 * i + j
  table = params["relative_position_bias"]
  bias = table[dual_stage._relative_position_index(ws)].transpose(2, 0, 1)  # pylint: disable=protected-access
  out = jnp.zeros((8, 12, heads * d))
  for wy in range(0, 8, ws):
    for wx in range(0, 12, ws):
      t = rolled[0, wy : wy + ws, wx : wx + ws].reshape(ws * ws, 3, heads, d)
      lab = label[wy : wy + ws, wx : wx + ws].reshape(-1)
      q, k, v = (t[:, i].transpose(1, 0, 2) for i in range(3))
      logits = q @ k.transpose(0, 2, 1) / np.sqrt(d) + bias
      logits = jnp.where(lab[:, None] == lab[None, :], logits, -100.0)
      o = (jax.nn.softmax(logits, -1) @ v).transpose(1, 0, 2).reshape(ws, ws, heads * d)
      out = out.at[wy : wy + ws, wx : wx + ws].set(o)
  out = jnp.roll(out, (s, s), axis=(0, 1))
  expected = out @ params["project"]["kernel"][0, 0] + params["project"]["bias"]
  np.testing.assert_allclose(y[0], expected, atol=1e-5)


def test_any_size_padding_independence_and_the_intermediate_image(tiny):
  model, params = tiny
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 21, 30, 3))
  apply = jax.jit(model.apply, static_argnames="mutable")
  y, state = apply({"params": params}, x, mutable=("stage_outputs", "intermediates"))
  assert y.shape == (2, 21, 30, 3) and y.dtype == jnp.float32
  (stage1,) = state["stage_outputs"]["stage1"]
  assert stage1.shape == (2, 21, 30, 3) and float(jnp.abs(stage1 - y).max()) > 0
  assert state["intermediates"]["rain_mask"][0].shape == (2, 21, 30, 1)
  # The same image inside a larger zero-padded canvas, with its valid mask.
  canvas = jnp.zeros((2, 48, 40, 3)).at[:, :21, :30].set(x)
  valid = jnp.zeros((2, 48, 40, 1)).at[:, :21, :30].set(1.0)
  y_padded = apply({"params": params}, canvas, valid)[:, :21, :30]
  np.testing.assert_allclose(y_padded, y, atol=2e-5)


def test_remat_gradients_reach_the_centroids_and_bfloat16_stays_close():
  # One block per stage (remat and dtype act per block; each of the four compiles here
  # then costs about half).
  model = DualStageNet(**ONE_BLOCK_EACH)
  params = init_params(model, jax.random.PRNGKey(1))
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, 16, 16, 3))
  grad = lambda m: jax.jit(
    jax.grad(  # noqa: E731
      lambda p: jnp.mean(jnp.square(m.apply({"params": p}, x) - 0.5))
    )
  )(params)
  plain, remat = grad(model), grad(model.clone(remat=True))
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # The argmax routing has no gradient; the straight-through gate gives the centroids one.
  assert float(jnp.abs(plain["stage2_0"]["non_local"]["centroids"]).max()) > 0
  y32 = jax.jit(model.apply)({"params": params}, x)
  y16 = jax.jit(model.clone(dtype=jnp.bfloat16).apply)({"params": params}, x)
  # Relative to the output's size (an untrained net's output reaches +-2).
  assert y16.dtype == jnp.float32
  assert float(jnp.abs(y16 - y32).max()) < 0.05 * float(jnp.abs(y32).max())


def test_create_model_from_the_config_and_unknown_fields():
  model = create_model(default.dual_stage_model())
  assert isinstance(model, DualStageNet) and model.window_size == 8
  with pytest.raises(ValueError, match=r"\['blocks'\].*DualStageNet"):
    create_model(dict(default.dual_stage_model(), blocks=3))
  with pytest.raises(ValueError, match="mask_threshold"):
    dual_stage.rain_mask(jnp.zeros((1, 8, 8, 3)), threshold="median")


def test_one_training_step_on_both_outputs_lowers_the_loss():
  config = default.use_dual_stage_recipe(default.get_config())
  config.model.update(ONE_BLOCK_EACH)
  config.data.crop_size, config.batch_size = 16, 2
  config.learning_rate, config.constant_steps = 1e-3, 10
  training = train_lib.build_training(config)
  image, _ = streak_image(size=(16, 16))
  clean = np.repeat((image * 200).astype(np.uint8), 2, axis=0)
  rainy = np.clip(
    clean.astype(int) + 60 * (np.random.default_rng(0).random((2, 16, 16, 1)) < 0.2), 0, 255
  ).astype(np.uint8)
  batch = training.place_batch({"clean": clean, "rainy": rainy})
  # The intermediate image's loss is part of the objective.
  config.intermediate_loss_weight = 0.0
  other = train_lib.build_training(config)  # the same initial state (config.seed)
  _, without = other.step(other.init_state(), batch)
  state = training.init_state()
  losses = []
  for _ in range(3):
    state, metrics = training.step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[0] > float(without["loss"]) and losses[-1] < losses[0], losses


def test_derainer_tiles_with_blending_and_ensembles(tiny):
  model, params = tiny
  image = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
  whole = inference.derain(model, params, image)
  derainer = inference.Derainer(model, params, tile=20, overlap=8)
  assert not derainer.tiles_are_exact
  tiled = derainer(image)
  assert tiled.shape == image.shape and np.abs(tiled - whole).mean() < 0.05
  assert inference.derain(model, params, image, ensemble=True).shape == image.shape
