"""Synthetic rain, the synthetic_rain builder and the grain input pipeline."""

import contextlib
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from nasnet_jax import metrics
from nasnet_jax.data import heldout_rain, photos, pipeline, synthetic_rain
from tests.conftest import TinyRain


@pytest.fixture(scope="module")
def photo():
  return jnp.asarray(photos.square(photos.load_photo("chelsea"), 96), jnp.float32) / 255.0


@pytest.mark.parametrize("rain_type", synthetic_rain.RAIN_TYPES)
def test_rain_is_deterministic_in_range_and_grows_with_strength(photo, rain_type):
  render = jax.jit(synthetic_rain.add_rain, static_argnames="rain_type")
  a = render(jax.random.key(0), photo, rain_type, 0.5)
  b = render(jax.random.key(0), photo, rain_type, 0.5)
  c = render(jax.random.key(1), photo, rain_type, 0.5)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.shape == photo.shape and float(a.min()) >= 0 and float(a.max()) <= 1
  clean8 = metrics.to_uint8(photo)
  psnrs = [
    np.mean(
      [
        metrics.psnr(metrics.to_uint8(render(jax.random.key(k), photo, rain_type, s)), clean8)
        for k in range(3)
      ]
    )
    for s in (0.2, 0.5, 1.0)
  ]
  assert psnrs[0] > psnrs[1] > psnrs[2], psnrs
  assert psnrs[0] < 40  # even light rain is visible


@pytest.mark.parametrize("rain_type", synthetic_rain.RAIN_TYPES + ("mixed",))
def test_strength_zero_returns_the_image_unchanged(photo, rain_type):
  # Jitted: "mixed" is a lax.switch, which outside jit compiles its branches every call.
  render = jax.jit(synthetic_rain.add_rain, static_argnames="rain_type")
  for k in range(3):
    out = render(jax.random.key(k), photo, rain_type, 0.0)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(photo))
  light = render(jax.random.key(0), photo, rain_type, 0.05)
  assert 0 < float(jnp.abs(light - photo).max())  # just above zero it starts to show


def test_rain_models_follow_their_equations(photo):
  key = jax.random.key(4)
  streaks = synthetic_rain.add_streaks(key, photo, 0.5)
  assert bool(jnp.all(streaks >= photo - 1e-6))  # R = B + S, S >= 0
  drops = synthetic_rain.add_drops(key, photo, 0.5)
  changed = jnp.any(jnp.abs(drops - photo) > 1e-3, axis=-1)
  assert 0.02 < float(changed.mean()) < 0.9  # drops cover part of it
  # Light mist veils a little; full strength much more.
  light = synthetic_rain.add_mist(key, photo, 0.2)
  heavy = synthetic_rain.add_mist(key, photo, 1.0)
  assert float(jnp.std(heavy)) < float(jnp.std(light)) < float(jnp.std(photo)) + 1e-3


def test_batch_rendering_and_mixed_types(photo):
  clean = jnp.stack([photo] * 6)
  rainy = synthetic_rain.add_rain_batch(jax.random.key(0), clean, "mixed")
  assert rainy.shape == clean.shape
  per_image = [np.asarray(r) for r in rainy]
  assert len({r.tobytes() for r in per_image}) == 6
  with pytest.raises(ValueError, match="rain_type"):
    synthetic_rain.add_rain(jax.random.key(0), photo, "snow")


def test_mixed_rain_weights_pick_the_types(photo):
  key = jax.random.key(7)
  render = jax.jit(synthetic_rain.add_rain, static_argnames=("rain_type",))
  mixed = jax.jit(lambda k, x, w: synthetic_rain.add_rain(k, x, "mixed", weights=w))
  for i, rain_type in enumerate(synthetic_rain.RAIN_TYPES):
    weights = np.eye(3, dtype=np.float32)[i] * 2.0  # traced: one compilation for all
    np.testing.assert_allclose(mixed(key, photo, weights), render(key, photo, rain_type), atol=1e-5)
  for bad in [(1.0, 1.0), (1.0, -1.0, 1.0), (0.0, 0.0, 0.0)]:
    with pytest.raises(ValueError, match="rain weights"):
      synthetic_rain.add_rain(key, photo, "mixed", weights=bad)


def test_builder_splits_counts_and_features(tiny_data_dir):
  train = pipeline.get_data_source("tiny_rain/mixed", "train", tiny_data_dir)
  test = pipeline.get_data_source("tiny_rain/mixed", "test", tiny_data_dir)
  assert len(train) == 2 * 3 and len(test) == 1 * (3 * 2 + 4 * 1 + 1)
  examples = list(pipeline.eval_examples(test))
  heldout = {"heldout_" + k for k in heldout_rain.KINDS}
  assert {e["rain_type"] for e in examples} == (
    set(synthetic_rain.RAIN_TYPES) | heldout | {"clean"}
  )
  for e in examples:
    assert e["rainy"].shape == e["clean"].shape == (40, 40, 3)
    assert e["rainy"].dtype == np.uint8 and e["id"].startswith("chelsea/")
    assert np.array_equal(e["rainy"], e["clean"]) == (e["rain_type"] == "clean")
  train_ids = {pipeline.as_text(train[i]["id"]).split("/")[0] for i in range(len(train))}
  assert train_ids == {"astronaut", "coffee"}  # different photos from test


def test_heldout_renderer_is_deterministic_and_changes_the_image(photo):
  image = np.asarray(photo)
  for kind in heldout_rain.KINDS:
    a = heldout_rain.add_heldout_rain(image, kind, seed=3, level=0.7)
    np.testing.assert_array_equal(a, heldout_rain.add_heldout_rain(image, kind, 3, 0.7))
    assert not np.array_equal(a, heldout_rain.add_heldout_rain(image, kind, 4, 0.7))
    assert a.shape == image.shape and a.dtype == np.float32 and 0 <= a.min() <= a.max() <= 1
    assert metrics.psnr(metrics.to_uint8(a), metrics.to_uint8(image)) < 40, kind
    np.testing.assert_array_equal(heldout_rain.add_heldout_rain(image, kind, 3, 0.0), image)
  with pytest.raises(ValueError, match="held-out rain kind"):
    heldout_rain.add_heldout_rain(image, "snow", 0, 0.5)


def test_heldout_renderer_is_independent_of_the_training_renderer():
  """It may import only NumPy, SciPy and Pillow: no JAX, nothing of nasnet_jax."""
  import ast  # pylint: disable=g-import-not-at-top

  tree = ast.parse(open(heldout_rain.__file__).read())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      imported.add((node.module or "").split(".")[0])
  assert imported <= {"__future__", "numpy", "PIL", "scipy"}, imported


def test_photos_are_natural_colour_and_split():
  assert not set(photos.TRAIN_PHOTOS) & set(photos.TEST_PHOTOS)
  for name in photos.TRAIN_PHOTOS + photos.TEST_PHOTOS:
    image = photos.load_photo(name)
    assert image.ndim == 3 and min(image.shape[:2]) >= 300, name
    assert np.abs(image[..., 0].astype(int) - image[..., 2]).mean() > 5, name  # colour
  with pytest.raises(ValueError, match="unknown photo"):
    photos.load_photo("lena")


def test_builder_is_deterministic(tiny_data_dir, tmp_path):
  again = TinyRain(config="mixed", data_dir=str(tmp_path), file_format="array_record")
  again.download_and_prepare()
  a = tfds.data_source("tiny_rain/mixed", split="test", data_dir=tiny_data_dir)
  b = again.as_data_source(split="test")
  by_id = lambda src: {pipeline.as_text(src[i]["id"]): src[i]["rainy"] for i in range(len(src))}
  da, db = by_id(a), by_id(b)
  assert da.keys() == db.keys()
  for k in da:
    np.testing.assert_array_equal(da[k], db[k])


def _coordinate_source(n=5, h=30, w=37):
  """rainy encodes (row, col, index); clean = 255 - rainy: alignment is checkable."""
  out = []
  for i in range(n):
    yy, xx = np.mgrid[0:h, 0:w]
    rainy = np.stack([yy, xx, np.full_like(yy, i)], -1).astype(np.uint8)
    out.append({"rainy": rainy, "clean": 255 - rainy, "id": f"img{i}"})
  return out


def test_crops_stay_aligned_and_cover_flips_and_rotations():
  ds = pipeline.train_dataset(
    _coordinate_source(),
    crop_size=16,
    global_batch_size=4,
    seed=0,
    process_index=0,
    process_count=1,
  )
  orientations = set()
  for i in range(20):
    batch = ds[i]
    assert batch["rainy"].shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(batch["clean"], 255 - batch["rainy"])
    for crop in batch["rainy"].astype(int):
      # Neighbouring pixels differ by one row or column: a true crop, maybe flipped/rotated.
      dy = crop[1, 0, :2] - crop[0, 0, :2]
      dx = crop[0, 1, :2] - crop[0, 0, :2]
      assert sorted(map(abs, dy)) == [0, 1] and sorted(map(abs, dx)) == [0, 1]
      orientations.add((tuple(dy), tuple(dx)))
  assert len(orientations) == 8  # 4 rotations x flip


def test_scaled_crops_are_resized_and_stay_aligned():
  ds = pipeline.train_dataset(
    _coordinate_source(h=90, w=100),
    crop_size=16,
    global_batch_size=4,
    seed=0,
    scale_range=(0.5, 3.0),
    flip=False,
    rotate=False,
    process_index=0,
    process_count=1,
  )
  spans = set()
  for i in range(10):
    batch = ds[i]
    assert batch["rainy"].shape == (4, 16, 16, 3)
    diff = batch["clean"].astype(int) + batch["rainy"] - 255
    assert np.abs(diff).max() <= 1  # the same resize for both (rounding aside)
    spans |= {int(c[-1, 0, 0]) - int(c[0, 0, 0]) for c in batch["rainy"]}
  assert min(spans) < 15 < max(spans)  # crops shrunk and enlarged: other scales
  with pytest.raises(ValueError, match="scale_range"):
    pipeline.train_dataset(
      _coordinate_source(),
      crop_size=8,
      global_batch_size=2,
      seed=0,
      scale_range=(2.0, 1.0),
      process_index=0,
      process_count=1,
    )


def test_pipeline_is_deterministic_and_resumes_exactly():
  make = lambda seed: pipeline.train_iterator(
    pipeline.train_dataset(
      _coordinate_source(),
      crop_size=8,
      global_batch_size=2,
      seed=seed,
      process_index=0,
      process_count=1,
    )
  )
  a, b = make(0), make(0)
  first = [next(a) for _ in range(4)]
  for x in first:
    np.testing.assert_array_equal(x["rainy"], next(b)["rainy"])
  state = a.get_state()
  expected = [next(a)["rainy"] for _ in range(3)]
  resumed = make(0)
  resumed.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(e, next(resumed)["rainy"])
  other = make(1)
  assert any(not np.array_equal(x["rainy"], next(other)["rainy"]) for x in first)


def test_hosts_get_disjoint_shares():
  src = _coordinate_source(n=8)
  shares = [
    pipeline.train_dataset(
      src, crop_size=8, global_batch_size=4, seed=0, process_index=p, process_count=2
    )
    for p in range(2)
  ]
  ids = [set(int(v) for v in s[0]["rainy"][:, 0, 0, 2]) for s in shares]
  assert shares[0][0]["rainy"].shape[0] == 2 and not ids[0] & ids[1]
  # Host 0's rows then host 1's are the one-host batch, row for row: the train step's
  # per-row draws (on-device rain) are then the same on any number of hosts.
  whole = pipeline.train_dataset(
    src, crop_size=8, global_batch_size=4, seed=0, process_index=0, process_count=1
  )
  for b in range(3):
    for key in ("rainy", "clean"):
      np.testing.assert_array_equal(
        np.concatenate([shares[0][b][key], shares[1][b][key]]), whole[b][key]
      )


def test_crop_larger_than_image_is_a_clear_error_unless_padding():
  ds = pipeline.train_dataset(
    _coordinate_source(h=10, w=12),
    crop_size=16,
    global_batch_size=2,
    seed=0,
    process_index=0,
    process_count=1,
  )
  with pytest.raises(
    ValueError,
    match=r"config.data.crop_size=16 is larger than example "
    r"img\d \(10x12\)",
  ):
    ds[0]
  padded = pipeline.train_dataset(
    _coordinate_source(h=10, w=12),
    crop_size=16,
    global_batch_size=2,
    seed=0,
    pad_small_images=True,
    process_index=0,
    process_count=1,
  )[0]
  assert padded["rainy"].shape == (2, 16, 16, 3)
  np.testing.assert_array_equal(padded["clean"], 255 - padded["rainy"])


def test_small_images_are_padded_with_one_warning(caplog):
  ds = pipeline.train_dataset(
    _coordinate_source(h=10, w=12),
    crop_size=16,
    global_batch_size=2,
    seed=0,
    pad_small_images=True,
    process_index=0,
    process_count=1,
  )
  with caplog.at_level(logging.WARNING):
    for i in range(3):
      ds[i]
  warnings = [r.getMessage() for r in caplog.records if "reflect-padding" in r.getMessage()]
  assert len(warnings) == 1
  assert "config.data.crop_size=16" in warnings[0] and "pad_small_images=False" in warnings[0]


def test_mixture_draws_by_weight_and_resumes():
  a = _coordinate_source(n=4)
  b = [
    dict(e, rainy=e["rainy"] // 2 + 128, clean=255 - (e["rainy"] // 2 + 128), id="b" + e["id"])
    for e in _coordinate_source(n=4)
  ]
  make = lambda: pipeline.train_iterator(
    pipeline.train_dataset(
      pipeline.Mixture([a, b], [1.0, 3.0]),
      crop_size=8,
      global_batch_size=4,
      seed=0,
      process_index=0,
      process_count=1,
    )
  )
  it = make()
  batches = [next(it) for _ in range(50)]
  from_b = np.mean([(x["rainy"][:, 0, 0, 0] >= 128).mean() for x in batches])
  assert 0.65 < from_b < 0.85  # odds 3:1
  for x in batches:
    np.testing.assert_array_equal(x["clean"], 255 - x["rainy"])
  state = it.get_state()
  expected = next(it)["rainy"]
  resumed = make()
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["rainy"], expected)
  with pytest.raises(ValueError, match="mixture weights"):
    pipeline.Mixture([a, b], [1.0, -1.0])


def test_device_prefetch_returns_the_state_after_each_batch():
  """Batches placed on the device by grain's thread, 3 ahead: each comes with the state
  right after it (not after the prefetched ones), and that state resumes exactly."""
  make = lambda **kw: pipeline.train_iterator(
    pipeline.train_dataset(
      _coordinate_source(),
      crop_size=8,
      global_batch_size=2,
      seed=0,
      process_index=0,
      process_count=1,
    ),
    **kw,
  )
  place = lambda b: jax.device_put(b["rainy"])
  reference = make()
  with contextlib.closing(make(place=place, device_prefetch=3)) as placed:
    for _ in range(4):
      batch = next(placed)
      assert isinstance(batch, jax.Array)
      np.testing.assert_array_equal(np.asarray(batch), next(reference)["rainy"])
      assert placed.get_state() == reference.get_state()
    state = placed.get_state()
  expected = next(reference)["rainy"]
  with contextlib.closing(make(place=place, device_prefetch=3)) as resumed:
    resumed.set_state(state)
    np.testing.assert_array_equal(np.asarray(next(resumed)), expected)


def test_unknown_dataset_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="config.data.name='no_such_rain'"):
    pipeline.get_data_source("no_such_rain", "train", str(tmp_path))
