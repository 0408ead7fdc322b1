"""PReNet / PRN (``models.PReNet``): parameter counts of the authors' variants, the
receptive field, masked padding and exact tiles, and agreement with its PyTorch twin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax import convert, inference
from nasnet_jax.models import PReNet, create_model, init_params


def _torch_prenet():
  """(torch, nasnet_jax.torch_prenet), or the test skipped without PyTorch."""
  torch = pytest.importorskip("torch")
  from nasnet_jax import torch_prenet  # pylint: disable=g-import-not-at-top

  return torch, torch_prenet


# The authors' four released variants: PReNet6, PRN6, PReNet6_r, PRN6_r.
VARIANTS = {
  "PReNet": ({}, {}),
  "PRN": ({"recurrent": "none"}, {"recurrent": False}),
  "PReNet_r": ({"recursive_blocks": True}, {"recursive_blocks": True}),
  "PRN_r": (
    {"recurrent": "none", "recursive_blocks": True},
    {"recurrent": False, "recursive_blocks": True},
  ),
}


@pytest.mark.parametrize(
  "variant, count", [("PReNet", 168_963), ("PRN", 95_107), ("PReNet_r", 94_979), ("PRN_r", 21_123)]
)
def test_parameter_counts_of_the_authors_variants(variant, count):
  jax_kwargs, torch_kwargs = VARIANTS[variant]
  params = jax.eval_shape(lambda: init_params(PReNet(**jax_kwargs), jax.random.key(0)))
  assert sum(np.prod(p.shape) for p in jax.tree.leaves(params)) == count
  _, torch_prenet = _torch_prenet()
  assert sum(p.numel() for p in torch_prenet.PReNet(**torch_kwargs).parameters()) == count


def _tiny(**kwargs):
  model = PReNet(**{"stages": 2, "blocks": 1, "features": 8, **kwargs})
  params = init_params(model, jax.random.key(1))
  # Larger weights than the initialisation, so that borders and tiles matter.
  return model, jax.tree.map(lambda p: p * 2.0, params)


@pytest.mark.parametrize("kwargs, radius", [({}, 10), ({"recurrent": "none"}, 8)])
def test_receptive_field_radius_is_where_the_output_stops_seeing(kwargs, radius):
  model, params = _tiny(**kwargs)
  assert model.receptive_field_radius == radius
  x = jnp.asarray(np.random.default_rng(0).random((1, 31, 31, 3), dtype=np.float32))
  grad = jax.grad(lambda x: model.apply({"params": params}, x)[0, 15, 15].sum())(x)
  reach = np.argwhere(np.abs(np.asarray(grad[0])).sum(-1) > 0)
  assert np.abs(reach - 15).max() == radius
  assert PReNet().receptive_field_radius == 78


def test_padding_and_tiles_give_the_image_at_its_own_size():
  """The mask zeroes every activation and the LSTM state outside the image: padded to a
  bucket, or cut into tiles with the receptive field as overlap, the output is exact."""
  model, params = _tiny()
  image = np.random.default_rng(2).random((29, 43, 3), dtype=np.float32)
  own = np.clip(np.asarray(model.apply({"params": params}, image[None]))[0], 0, 1)
  np.testing.assert_allclose(inference.derain(model, params, image), own, atol=1e-5)
  tiled = inference.Derainer(model, params, tile=12)
  assert tiled.tiles_are_exact and tiled.overlap == 10
  np.testing.assert_allclose(tiled(image), own, atol=1e-5)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_the_pytorch_twin_with_the_same_weights(variant):
  _, torch_kwargs = VARIANTS[variant]
  torch, torch_prenet = _torch_prenet()
  torch.manual_seed(0)
  net = torch_prenet.PReNet(stages=3, blocks=2, channels=8, **torch_kwargs).eval()
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  config = convert.infer_prenet_config(state, stages=3)
  model = create_model(config)
  assert (model.blocks, model.features) == (2 if "_r" not in variant else 5, 8)
  if "_r" in variant:  # the authors' _r files hold one block, applied 5 times
    net.blocks = 5
  params = convert.to_flax(state, config)
  images = np.random.default_rng(0).random((2, 19, 26, 3), dtype=np.float32)
  with torch.no_grad():
    theirs = net(torch.from_numpy(images).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  ours = np.asarray(model.apply({"params": params}, images))
  np.testing.assert_allclose(ours, theirs, atol=1e-5)
  for key, value in convert.to_state_dict(params, config).items():
    np.testing.assert_array_equal(value, state[key])


def test_bfloat16_computes_the_same_function():
  model, params = _tiny()
  image = np.random.default_rng(3).random((1, 24, 24, 3), dtype=np.float32)
  f32 = np.asarray(model.apply({"params": params}, image))
  bf16 = np.asarray(model.clone(dtype=jnp.bfloat16).apply({"params": params}, image))
  assert bf16.dtype == np.float32
  # What bfloat16 gives at the initialisation: 57.6 dB PSNR against float32.
  psnr = -10 * np.log10(np.mean((f32 - bf16) ** 2))
  assert 50 < psnr < 120, psnr


@pytest.mark.parametrize(
  "fields, message",
  [
    ({"recurrent": "gru"}, "recurrent must be one of"),
    ({"stages": 0}, "must all be >= 1"),
  ],
)
def test_bad_settings_are_clear_errors(fields, message):
  model = create_model({"name": "prenet", **fields})
  with pytest.raises(ValueError, match=message):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match=r"fields \['attention'\] that PReNet does not take"):
    create_model({"name": "prenet", "attention": "na"})
