"""DDSA: any size, padding-independent output, sparse branches, bf16/remat, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from nasnet_jax import inference, train_lib
from nasnet_jax.models import DDSA, DynamicDualAttention, create_model, init_params

# Three levels, two sparse branches: small, but every part of the network. (Compiling the
# initialisation dominates these tests, so one set of parameters is shared.)
TINY = dict(
  features=8, blocks=(1, 1, 1), heads=(1, 2, 2), refinement_blocks=0, sparse_ratios=(1 / 2, 3 / 4)
)


# Two levels: the size tests still pad (to 4), and each compile costs a third less.
TWO_LEVELS = dict(TINY, blocks=(1, 1), heads=(1, 2))


@pytest.fixture(scope="module")
def tiny():
  model = DDSA(**TWO_LEVELS)
  return model, init_params(model, jax.random.PRNGKey(1))


def test_size_multiple_covers_the_levels_and_the_spatial_pooling():
  assert DDSA().size_multiple == 16
  assert DDSA(spatial_ffn=False).size_multiple == 8
  assert DDSA(**TINY).size_multiple == 8


def test_any_size_and_padding_does_not_change_the_output(tiny):
  model, params = tiny
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 21, 30, 3))
  apply = jax.jit(model.apply)
  y = apply({"params": params}, x)
  assert y.shape == (2, 21, 30, 3) and y.dtype == jnp.float32
  # The same image inside a larger zero-padded canvas, with its valid mask.
  canvas = jnp.zeros((2, 48, 40, 3)).at[:, :21, :30].set(x)
  valid = jnp.zeros((2, 48, 40, 1)).at[:, :21, :30].set(1.0)
  y_padded = apply({"params": params}, canvas, valid)[:, :21, :30]
  np.testing.assert_allclose(y_padded, y, atol=2e-5)


def test_default_size_matches_the_inferred_backbone():
  shapes = jax.eval_shape(
    lambda: DDSA(spatial_ffn=False, dense_branch=False, mixing="global").init(
      jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))
    )
  )
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))
  # Restormer's 26.13 M (its attention and FFN at 48 channels), plus DRSformer-style
  # branch weights: within 0.1 %.
  assert abs(count - 26.13e6) / 26.13e6 < 1e-3, count


@pytest.mark.parametrize("ratio, keep", [(0.25, 1), (2 / 3, 3)])
def test_a_sparse_branch_alone_attends_to_exactly_k_channels(ratio, keep):
  attn = DynamicDualAttention(
    features=8, heads=2, sparse_ratios=(ratio,), dense=False, mixing="global"
  )
  assert attn.branch_keep_counts() == (keep,)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 5, 8))
  params = attn.init(jax.random.PRNGKey(1), x)["params"]
  _, state = attn.apply({"params": params}, x, mutable=["intermediates"])
  (maps,) = state["intermediates"]["attention"]
  assert maps.shape == (2, 2, 4, 4)  # (N, heads, d, d)
  assert (np.count_nonzero(np.asarray(maps), axis=-1) == keep).all()
  np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)


def test_dense_and_sparse_branches_mix_with_learned_weights():
  attn = DynamicDualAttention(features=8, heads=2, sparse_ratios=(1 / 2,))
  assert attn.branch_keep_counts() == (None, 2)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 5, 8))
  params = attn.init(jax.random.PRNGKey(1), x)["params"]
  _, state = attn.apply({"params": params}, x, mutable=["intermediates"])
  (maps,) = state["intermediates"]["attention"]
  assert (np.count_nonzero(np.asarray(maps), axis=-1) == 4).all()  # the dense branch
  # The per-image mixing MLP starts at zero: equal weights for the two branches.
  np.testing.assert_allclose(params["mix_mlp_1"]["kernel"], 0.0)


def test_sparse_attention_map_rows_have_k_nonzeros():
  from nasnet_jax.models import layers  # pylint: disable=g-import-not-at-top

  logits = jax.random.normal(jax.random.PRNGKey(3), (1, 2, 12, 12))
  k = layers.sparse_k(2 / 3, 12)
  weights = jax.nn.softmax(jnp.where(layers.top_k_mask(logits, k), logits, -jnp.inf), -1)
  assert (np.count_nonzero(np.asarray(weights), axis=-1) == k).all()
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


def test_remat_keeps_the_gradients_and_bfloat16_stays_close(tiny):
  # (Finite gradients on a black image: tests/test_networks.py.) Remat acts per block, so
  # one level shows it, and its two gradients compile in a third of two levels' time.
  one_level = DDSA(**dict(TWO_LEVELS, blocks=(1,), heads=(1,)))
  one_params = init_params(one_level, jax.random.PRNGKey(1))
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, 16, 16, 3))
  grad = lambda m: jax.jit(
    jax.grad(  # noqa: E731
      lambda p: jnp.mean(m.apply({"params": p}, x))
    )
  )(one_params)
  for a, b in zip(
    jax.tree.leaves(grad(one_level)), jax.tree.leaves(grad(one_level.clone(remat=True)))
  ):
    np.testing.assert_allclose(a, b, atol=1e-6)
  model, params = tiny
  y32 = jax.jit(model.apply)({"params": params}, x)
  y16 = jax.jit(model.clone(dtype=jnp.bfloat16).apply)({"params": params}, x)
  assert y16.dtype == jnp.float32 and float(jnp.abs(y16 - y32).max()) < 0.05


def test_create_model_from_the_ddsa_config_and_unknown_fields():
  config = default.ddsa_model()
  model = create_model(config)
  assert isinstance(model, DDSA) and model.blocks == (4, 6, 6, 8)
  with pytest.raises(ValueError, match=r"\['stages'\].*DDSA"):
    create_model(dict(config, stages=3))


def test_one_training_step_lowers_the_loss():
  config = default.use_ddsa_recipe(default.get_config())
  config.model.update(
    features=8, blocks=(1, 1), heads=(1, 1), refinement_blocks=0, sparse_ratios=(1 / 2,)
  )
  config.data.crop_size, config.batch_size = 16, 2
  config.learning_rate, config.constant_steps = 1e-3, 10
  training = train_lib.build_training(config)
  state = training.init_state()
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  rainy = np.clip(clean.astype(int) + 60 * (rng.random((2, 16, 16, 1)) < 0.2), 0, 255)
  batch = training.place_batch({"clean": clean, "rainy": rainy.astype(np.uint8)})
  losses = []
  for _ in range(3):
    state, metrics = training.step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0], losses
  # The recipe's loss (L1), bound by build_training: not L1 + (1 - SSIM).
  assert config.loss == "l1" and losses[-1] == pytest.approx(float(metrics["l1"]))


def test_derainer_tiles_with_blending_and_ensembles(tiny):
  model, params = tiny
  image = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
  whole = inference.derain(model, params, image)
  derainer = inference.Derainer(model, params, tile=20, overlap=8)
  assert not derainer.tiles_are_exact
  tiled = derainer(image)
  assert tiled.shape == image.shape and np.abs(tiled - whole).mean() < 0.05
  assert inference.derain(model, params, image, ensemble=True).shape == image.shape
