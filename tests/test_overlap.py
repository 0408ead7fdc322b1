"""Train/test overlap: fingerprints, the report a build writes, and leaving overlaps out."""

import io
import logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from nasnet_jax.data import overlap, photos, pipeline
from tests import fake_datasets as fake


def _photo(name: str, size=(96, 72)) -> np.ndarray:
  """A natural photo at a small size: perceptual hashes need real image structure."""
  return np.asarray(Image.fromarray(photos.load_photo(name)).resize(size, Image.Resampling.BICUBIC))


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
  h, w = image.shape[:2]
  return np.asarray(
    Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
  )


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, "JPEG", quality=quality)
  return np.asarray(Image.open(buffer).convert("RGB"))


def test_exact_and_near_copies_are_found_and_different_photos_are_not():
  coffee, chelsea, astronaut = _photo("coffee"), _photo("chelsea"), _photo("astronaut")
  finder = overlap.OverlapFinder()
  for key, image in (
    ("coffee", coffee),
    ("chelsea", chelsea),
    ("astronaut", astronaut),
    ("coffee_again", coffee.copy()),
  ):  # a copy inside train: not reported
    finder.add("train", key, overlap.fingerprint(image))
  for key, image in (
    ("coffee_copy", coffee.copy()),
    ("chelsea_x1.5", _resized(chelsea, 1.5)),
    ("chelsea_x0.5", _resized(chelsea, 0.5)),
    ("astronaut_jpeg95", _jpeg(astronaut, 95)),
    ("flower", _photo("flower")),
    ("grace_hopper", _photo("grace_hopper")),
    ("noise", fake.clean_image("noise", 72, 96)),
  ):
    finder.add("test", key, overlap.fingerprint(image))
  found = {(m.id_a, m.id_b): (m.kind, m.distance) for m in finder.matches()}
  assert set(found) == {
    ("astronaut_jpeg95", "astronaut"),
    ("chelsea_x0.5", "chelsea"),
    ("chelsea_x1.5", "chelsea"),
    ("coffee_copy", "coffee"),
    ("coffee_copy", "coffee_again"),
  }
  assert found[("coffee_copy", "coffee")] == ("exact", 0)
  for pair in (("chelsea_x1.5", "chelsea"), ("astronaut_jpeg95", "astronaut")):
    kind, distance = found[pair]
    assert kind == "near" and distance <= overlap.MAX_NEAR_DISTANCE
  # The same pixels at another shape is not an exact copy.
  flat = fake.clean_image("flat", 8, 12)
  assert overlap.fingerprint(flat)[0] != overlap.fingerprint(flat.reshape(12, 8, 3))[0]


def test_near_search_in_blocks_finds_every_pair(monkeypatch):
  """Hashes compared a few at a time find what one comparison of all of them finds."""
  rng = np.random.default_rng(0)
  hashes = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
  near = hashes[:5] ^ np.uint64(0b101)  # 2 bits from five of them
  finder = overlap.OverlapFinder()
  for i, h in enumerate(hashes):
    finder.add("train", f"tr{i}", (f"sha{i}", int(h)))
  for i, h in enumerate(near):
    finder.add("test", f"te{i}", (f"other{i}", int(h)))
  whole = finder.matches()
  monkeypatch.setattr(overlap, "_BLOCK", 3)
  assert finder.matches() == whole
  if hasattr(np, "bitwise_count"):  # numpy 1.x counts bits another way
    monkeypatch.delattr(np, "bitwise_count")
    assert finder.matches() == whole
  assert {(m.id_a, m.id_b, m.kind, m.distance) for m in whole} == {
    (f"te{i}", f"tr{i}", "near", 2) for i in range(5)
  }


def _pair(root, folder, n, clean):
  fake._save(f"{root}/{folder}/target/{n}.png", clean)
  fake._save(f"{root}/{folder}/input/{n}.png", fake.rainy_image(clean))


@pytest.fixture(name="built", scope="module")
def _built(tmp_path_factory):
  """paired_folders/dups: train has 8 pairs; test repeats one exactly and one resized."""
  root = str(tmp_path_factory.mktemp("manual"))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  coffee, chelsea = _photo("coffee"), _photo("chelsea")
  for n in range(6):
    _pair(root, "train", n, fake.clean_image(f"tr{n}", 72, 96))
  _pair(root, "train", 6, coffee)
  _pair(root, "train", 7, chelsea)
  _pair(root, "test", 0, coffee)  # exact
  _pair(root, "test", 1, _resized(chelsea, 4 / 3))  # resized
  _pair(root, "test", 2, fake.clean_image("te2", 72, 96))
  builder = pipeline.get_builder("paired_folders/dups", data_dir)
  warnings = []
  handler = logging.Handler(logging.WARNING)
  handler.emit = lambda record: warnings.append(record.getMessage())
  logging.getLogger("absl").addHandler(handler)
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
  finally:
    logging.getLogger("absl").removeHandler(handler)
  return builder, data_dir, warnings


def _ids(source):
  return sorted(pipeline.as_text(source[i]["id"]) for i in range(len(source)))


def test_a_build_reports_overlap_where_tfds_stored_it(built, caplog):
  builder, data_dir, warnings = built
  report = os.path.join(builder.data_dir, overlap.OVERLAP_REPORT)
  assert [w for w in warnings if "share clean images" in w] == [
    f"paired_folders/dups: 2 examples of test and 2 of train share clean images: 1 exact "
    f"and 1 near-duplicate pair(s), every one in {report} "
    "(--config.data.drop_test_overlap=True leaves them out of training)"
  ]
  matches = overlap.overlap_report(builder)
  assert [(m.split_a, m.id_a, m.split_b, m.id_b, m.kind) for m in matches] == [
    ("test", "test/input/0.png", "train", "train/input/6.png", "exact"),
    ("test", "test/input/1.png", "train", "train/input/7.png", "near"),
  ]
  for m in matches:  # the positions are where the examples are stored
    for split, index, key in ((m.split_a, m.index_a, m.id_a), (m.split_b, m.index_b, m.id_b)):
      assert pipeline.as_text(builder.as_data_source(split=split)[index]["id"]) == key
  with open(os.path.join(builder.data_dir, overlap.OVERLAP_REPORT)) as f:
    assert f.readline().startswith("# clean images shared between splits")
  assert not os.path.exists(os.path.join(builder.data_dir, "skipped.txt")) or all(
    line.startswith("#") for line in open(os.path.join(builder.data_dir, "skipped.txt"))
  )

  with caplog.at_level(logging.WARNING):
    source = pipeline.get_data_source(
      "paired_folders/dups", "train", data_dir, drop_test_overlap=True
    )
  assert _ids(source) == [f"train/input/{n}.png" for n in range(6)]
  assert any(
    "left out 2 of 8 examples whose clean image is also in test" in r.getMessage()
    for r in caplog.records
  )
  # Off (the default), the published split stays as published; the test split is untouched.
  assert len(pipeline.get_data_source("paired_folders/dups", "train", data_dir)) == 8
  assert (
    len(pipeline.get_data_source("paired_folders/dups", "test", data_dir, drop_test_overlap=True))
    == 1
  )


def test_positions_that_do_not_match_are_found_by_reading_the_ids(built, caplog):
  builder, _, _ = built
  path = os.path.join(builder.data_dir, overlap.OVERLAP_REPORT)
  matches = overlap.overlap_report(builder)
  shifted = [
    overlap.Match(
      m.split_a, m.id_a, m.index_a, m.split_b, m.id_b, (m.index_b + 1) % 8, m.kind, m.distance
    )
    for m in matches
  ]
  overlap.write_report(path, shifted)
  try:
    source = builder.as_data_source(split="train")
    with caplog.at_level(logging.WARNING):
      kept, dropped, others = overlap.without_overlap(builder, "train", source)
    assert (dropped, others) == (2, ("test",))
    assert _ids(kept) == [f"train/input/{n}.png" for n in range(6)]
    assert any("do not match the stored examples" in r.getMessage() for r in caplog.records)
  finally:
    overlap.write_report(path, matches)


def test_a_build_without_a_report_is_a_one_line_error(built):
  builder, _, _ = built
  path = os.path.join(builder.data_dir, overlap.OVERLAP_REPORT)
  os.rename(path, path + ".away")
  try:
    with pytest.raises(
      ValueError,
      match=r"drop_test_overlap=True: .*dups.* has no "
      r"overlap.txt .*delete that folder",
    ) as e:
      overlap.without_overlap(builder, "train", builder.as_data_source(split="train"))
    assert "\n" not in str(e.value)
  finally:
    os.rename(path + ".away", path)


def test_synthetic_rain_train_and_test_photos_do_not_overlap(tiny_data_dir):
  from tests.conftest import TinyRain  # pylint: disable=g-import-not-at-top

  builder = TinyRain(config="mixed", data_dir=tiny_data_dir)
  assert overlap.overlap_report(builder) == []
