"""Inference: shape buckets, exact tiling, blending, the x8 ensemble, bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax import inference
from nasnet_jax.models import NASNet, init_params


def _net(**kwargs):
  model = NASNet(**{"stages": 2, "blocks": 1, "features": 8, **kwargs})
  params = init_params(model, jax.random.PRNGKey(1))
  # Larger weights than the initialisation, so that borders and tiles matter.
  params = jax.tree.map(lambda p: p * 2.0, params)
  return model, params


def _image(h, w, seed=0):
  return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _exact(model, params, image, clip=True):
  """The network run on the image at its own size: the authors' semantics."""
  out = np.asarray(model.apply({"params": params}, image[None]))[0]
  return np.clip(out, 0, 1) if clip else out


@pytest.mark.parametrize(
  "n, expected", [(1, 16), (16, 16), (17, 32), (321, 352), (481, 512), (2160, 2304), (3840, 3840)]
)
def test_bucket_size(n, expected):
  assert inference.bucket_size(n) == expected


def test_receptive_field_radius_is_where_the_output_stops_seeing():
  for kwargs in ({}, {"attention": "none"}, {"fuse_stages": False}):
    model, params = _net(**kwargs)
    x = jnp.asarray(_image(61, 61)[None])
    grad = jax.grad(lambda x: model.apply({"params": params}, x)[0, 30, 30].sum())(x)
    reach = np.argwhere(np.abs(np.asarray(grad[0])).sum(-1) > 0)
    assert np.abs(reach - 30).max() == model.receptive_field_radius, kwargs
  assert NASNet().receptive_field_radius == 170
  assert NASNet(attention="se").receptive_field_radius is None


@pytest.mark.parametrize(
  "kwargs", [{}, {"attention": "se"}, {"input_mean": (0.4, 0.4, 0.4), "input_std": (0.2, 0.3, 0.2)}]
)
def test_padded_to_a_bucket_equals_the_image_at_its_own_size(kwargs):
  model, params = _net(**kwargs)
  image = _image(37, 50)
  np.testing.assert_allclose(
    inference.derain(model, params, image), _exact(model, params, image), atol=1e-5
  )


def test_one_compilation_per_bucket_not_per_size():
  model, params = _net(features=4)
  derainer = inference.Derainer(model, params)
  apply = inference.jitted_apply(model)
  before = apply._cache_size()  # pylint: disable=protected-access
  for h, w in ((33, 40), (35, 41), (40, 48), (47, 33)):  # all in the 48x48 bucket
    derainer(_image(h, w))
  assert apply._cache_size() - before == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("tile, tile_batch", [(16, 1), (24, 3)])
def test_tiled_equals_whole_with_overlap_at_least_the_receptive_field(tile, tile_batch):
  model, params = _net()
  image = _image(53, 70, seed=2)
  whole = inference.derain(model, params, image)
  derainer = inference.Derainer(model, params, tile=tile, tile_batch=tile_batch)
  assert derainer.overlap == model.receptive_field_radius and derainer.tiles_are_exact
  np.testing.assert_allclose(derainer(image), whole, atol=1e-5)


def test_a_smaller_overlap_blends_and_stays_close():
  model, params = _net()
  image = _image(53, 70, seed=3)
  whole = inference.derain(model, params, image)
  seams = inference.derain(model, params, image, tile=16, overlap=0)
  blended = inference.derain(model, params, image, tile=16, overlap=6)
  assert not inference.Derainer(model, params, tile=16, overlap=6).tiles_are_exact
  err_blend, err_seams = np.abs(blended - whole).mean(), np.abs(seams - whole).mean()
  assert err_blend < err_seams / 4


def test_ensemble_averages_the_eight_flips_and_rotations():
  model, params = _net()
  image = _image(20, 27, seed=4)
  expected = np.zeros_like(image)
  for k in range(4):
    for flip in (False, True):
      x = image[:, ::-1] if flip else image
      y = np.rot90(_exact(model, params, np.ascontiguousarray(np.rot90(x, k)), clip=True), -k)
      expected += y[:, ::-1] if flip else y
  # Each pass is an image, clipped to [0, 1], before the mean (as ONNX's passes are).
  got = inference.derain(model, params, image, ensemble=True)
  np.testing.assert_allclose(got, expected / 8, atol=1e-5)
  tiled = inference.derain(model, params, image, ensemble=True, tile=12)
  np.testing.assert_allclose(tiled, got, atol=1e-5)


def test_dtypes_in_and_out_and_bfloat16():
  model, params = _net()
  image = _image(18, 22, seed=5)
  as_float = inference.derain(model, params, image)
  as_uint8 = inference.derain(model, params, np.round(image * 255).astype(np.uint8))
  as_uint16 = inference.derain(model, params, np.round(image * 65535).astype(np.uint16))
  assert as_uint8.dtype == np.uint8 and as_uint16.dtype == np.uint16
  assert np.abs(as_uint16 / 65535.0 - as_float).max() < 2e-4
  assert np.abs(as_uint8 / 255.0 - as_float).max() < 0.03
  batch = inference.derain(model, params, np.stack([image, image[::-1]]))
  np.testing.assert_allclose(batch[0], as_float, atol=1e-6)
  bf16 = inference.derain(model, params, image, dtype="bfloat16")
  # What bfloat16 gives this net (weights doubled, so errors grow faster than in a trained
  # one): 41 dB PSNR against float32, asked with a 3 dB margin.
  psnr = -10 * np.log10(np.mean((bf16 - as_float) ** 2))
  assert bf16.dtype == np.float32 and 38 < psnr < 100, psnr


@pytest.mark.parametrize(
  "options, message",
  [({"tile": 0}, "tile=0"), ({"overlap": -1}, "overlap=-1"), ({"dtype": "int8"}, "int8")],
)
def test_bad_options_are_clear_errors(options, message):
  model, params = _net()
  with pytest.raises(ValueError, match=message):
    inference.Derainer(model, params, **options)
  with pytest.raises(ValueError, match="RGB"):
    inference.derain(model, params, np.zeros((4, 4)))
