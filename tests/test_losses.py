"""The training loss: L1 + (1 - SSIM), SSIM exactly dm_pix's."""

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax import losses


def reference(pred, target):
  ssim = dm_pix.ssim(pred, target, max_val=1.0, filter_size=11, filter_sigma=1.5)
  return jnp.mean(jnp.abs(pred - target)) + 1.0 - jnp.mean(ssim)


@pytest.mark.parametrize("shape", [(2, 16, 24, 3), (1, 11, 11, 3), (1, 13, 520, 3)])
def test_loss_and_gradient_equal_dm_pix(shape):
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.random(shape, np.float32))
  pred = jnp.clip(target + 0.1 * jnp.asarray(rng.normal(size=shape), jnp.float32), 0, 1)
  (loss, aux), grad = jax.value_and_grad(losses.l1_ssim_loss, has_aux=True)(pred, target)
  ref_loss, ref_grad = jax.value_and_grad(reference)(pred, target)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
  assert 0 < float(aux["ssim"]) < 1 and float(aux["l1"]) > 0


def test_identical_images_have_zero_loss():
  x = jnp.asarray(np.random.default_rng(1).random((1, 20, 20, 3), np.float32))
  loss, aux = losses.l1_ssim_loss(x, x)
  np.testing.assert_allclose(loss, 0.0, atol=1e-5)
  np.testing.assert_allclose(aux["ssim"], 1.0, atol=1e-5)


def test_named_losses():
  rng = np.random.default_rng(1)
  pred = jnp.asarray(rng.random((2, 16, 16, 3), np.float32))
  target = jnp.asarray(rng.random((2, 16, 16, 3), np.float32))
  l1 = float(jnp.mean(jnp.abs(pred - target)))
  value, aux = losses.image_loss("l1", pred, target)
  np.testing.assert_allclose(value, l1, rtol=1e-6)
  assert set(aux) == {"l1", "ssim"}
  value, _ = losses.image_loss("charbonnier", pred, target)
  expected = jnp.mean(jnp.sqrt(jnp.square(pred - target) + 1e-6))
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(
    losses.image_loss("l1_ssim", pred, target)[0], reference(pred, target), rtol=1e-5
  )
  # "l1" trains on L1 alone: SSIM is reported without gradient.
  grad = jax.grad(lambda p: losses.image_loss("l1", p, target)[0])(pred)
  np.testing.assert_allclose(grad, jnp.sign(pred - target) / pred.size, atol=1e-9)
  with pytest.raises(ValueError, match="config.loss='l2'"):
    losses.image_loss("l2", pred, target)


def test_ssim_filter_runs_at_full_precision_forward_and_backward():
  """At default precision a TPU would filter in one bfloat16 pass and a GPU in TF32,
  moving SSIM by up to 0.2; every matrix product of the loss and its gradient must ask
  for HIGHEST (checked in the lowered program, which is what an accelerator compiles)."""
  x = jnp.zeros((1, 16, 24, 3))
  grad = jax.value_and_grad(lambda p, t: losses.l1_ssim_loss(p, t)[0])
  text = jax.jit(grad).lower(x, x).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  assert dots, "the banded filter is no longer a matrix product: update this test"
  assert all("HIGHEST" in line for line in dots), [d for d in dots if "HIGHEST" not in d]
