"""The transformer networks' shared layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax.models import layers


def test_pixel_unshuffle_matches_pytorch_channel_order_and_shuffle_inverts_it():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  y = np.asarray(layers.pixel_unshuffle(jnp.asarray(x)))
  assert y.shape == (2, 2, 3, 12)
  for c in range(3):
    for dy in range(2):
      for dx in range(2):  # PyTorch: out channel c * 4 + dy * 2 + dx
        np.testing.assert_array_equal(y[..., c * 4 + dy * 2 + dx], x[:, dy::2, dx::2, c])
  np.testing.assert_array_equal(layers.pixel_shuffle(jnp.asarray(y)), x)


def test_top_k_mask_keeps_exactly_k_per_row_even_with_ties():
  logits = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 10, 10))
  for k in (1, 4, 10):
    mask = np.asarray(layers.top_k_mask(logits, k))
    assert (mask.sum(-1) == k).all()
    kept_min = np.where(mask, np.asarray(logits), np.inf).min(-1)
    dropped_max = np.where(mask, -np.inf, np.asarray(logits)).max(-1)
    assert (kept_min >= dropped_max).all()  # the largest ones
  ties = jnp.zeros((4, 7))  # a threshold at the k-th value would keep all 7
  assert (np.asarray(layers.top_k_mask(ties, 3)).sum(-1) == 3).all()
  with pytest.raises(ValueError, match="k=8"):
    layers.top_k_mask(ties, 8)


def test_sparse_k_is_the_ceiling_of_ratio_times_n():
  assert [layers.sparse_k(r, 48) for r in (1 / 2, 2 / 3, 3 / 4, 4 / 5)] == [24, 32, 36, 39]
  assert layers.sparse_k(0.01, 5) == 1
  with pytest.raises(ValueError, match="ratios"):
    layers.sparse_k(1.5, 5)


def test_bias_free_layer_norm_scales_without_centring():
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 2, 3, 8)) + 3.0
  norm = layers.ChannelLayerNorm("bias_free")
  y = norm.apply(norm.init(jax.random.PRNGKey(0), x), x)
  expected = x / jnp.sqrt(jnp.var(x, -1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(y, expected, rtol=1e-5)
  norm = layers.ChannelLayerNorm("with_bias")
  y = norm.apply(norm.init(jax.random.PRNGKey(0), x), x)
  np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)


def test_pad_to_multiple_and_valid_pooling():
  x = jnp.ones((1, 5, 7, 3))
  padded, valid = layers.pad_to_multiple(x, None, 4)
  assert padded.shape == (1, 8, 8, 3) and valid.shape == (1, 8, 8, 1)
  assert float(valid.sum()) == 35 and float(padded[..., 0].sum()) == 35
  coarse = layers.pool_valid(valid)
  assert coarse.shape == (1, 4, 4, 1) and float(coarse.sum()) == 12  # 3 rows x 4 columns
  np.testing.assert_allclose(layers.masked_mean(padded * 2, valid), [[2.0, 2.0, 2.0]])
