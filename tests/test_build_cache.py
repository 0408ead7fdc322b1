"""The resumable conversion stage of the benchmark builds."""

import glob
import io
import os
import signal
import textwrap

import numpy as np
import pytest
from PIL import Image

from nasnet_jax import image_io
from nasnet_jax.data import build_cache, builders, layouts, pipeline
from tests import fake_datasets as fake
from tests.conftest import run_script


def _decode(png: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(png)))


def _pairs(root, modes):
  pairs = []
  for n, mode in enumerate(modes):
    ext = ".jpg" if mode == "JPEG" else ".png"
    rainy, clean = f"{root}/in/{n}{ext}", f"{root}/gt/{n}{ext}"
    fake.write_pair(rainy, clean, f"c{n}", mode="RGB" if mode == "JPEG" else mode)
    pairs.append(layouts.Pair(id=f"in/{n}{ext}", rainy=rainy, clean=clean))
  return pairs


def test_rgb_png_is_stored_as_is_and_the_rest_as_uint8_rgb_png(tmp_path):
  modes = ("RGB", "I;16", "L", "RGBA", "JPEG")
  pairs = _pairs(str(tmp_path), modes)
  palette = str(tmp_path / "in" / "p.png")
  Image.fromarray(fake.clean_image("p")).convert("P").save(palette)
  pairs.append(layouts.Pair(id="in/p.png", rainy=palette, clean=palette))
  out = list(build_cache.converted_pairs(pairs, "x", str(tmp_path / "cache")))
  assert [o["id"] for o in out] == [p.id for p in pairs]
  for pair, example in zip(pairs, out):
    for key, path in (("rainy", pair.rainy), ("clean", pair.clean)):
      stored = _decode(example[key])
      assert stored.dtype == np.uint8 and stored.shape == (fake.H, fake.W, 3), pair.id
      np.testing.assert_array_equal(stored, image_io.read_image(path))
    with open(pair.rainy, "rb") as f:
      # 8-bit RGB PNG: the file's own bytes; 16-bit, gray, RGBA, JPEG, palette: re-encoded.
      assert (example["rainy"] == f.read()) == (pair is pairs[0]), pair.id


def test_unreadable_and_mismatched_pairs_become_skip_reasons(tmp_path):
  root = str(tmp_path)
  (good,) = _pairs(root, ("RGB",))
  fake._touch_garbage(f"{root}/bad.png")  # pylint: disable=protected-access
  fake.write_pair(f"{root}/big.png", f"{root}/small.png", "m")
  fake._save(f"{root}/small.png", fake.clean_image("m", fake.H - 2, fake.W))  # pylint: disable=protected-access
  pairs = [
    layouts.Pair("bad.png", f"{root}/bad.png", good.clean),
    good,
    layouts.Pair("big.png", f"{root}/big.png", f"{root}/small.png"),
    layouts.Pair("gone.png", f"{root}/gone.png", good.clean),
  ]
  out = list(build_cache.converted_pairs(pairs, "x", str(tmp_path / "cache"), chunk_size=3))
  reasons = {o["id"]: o.get("skipped") for o in out}
  assert "not a readable image" in reasons["bad.png"]
  assert reasons["big.png"].startswith("size 32x24 differs from its clean partner's 32x22")
  assert "cannot be read" in reasons["gone.png"]
  assert reasons[good.id] is None


def test_finished_chunks_are_reused_and_changed_files_redone(tmp_path, monkeypatch):
  pairs = _pairs(str(tmp_path), ("RGB",) * 5)
  cache = str(tmp_path / "cache")
  calls = []
  real = build_cache.convert_pair
  monkeypatch.setattr(build_cache, "convert_pair", lambda p: calls.append(p.id) or real(p))
  first = list(build_cache.converted_pairs(pairs, "x", cache, chunk_size=2))
  assert len(calls) == 5 and len(glob.glob(f"{cache}/x-*.msgpack")) == 3
  calls.clear()
  assert list(build_cache.converted_pairs(pairs, "x", cache, chunk_size=2)) == first
  assert not calls
  # A file rewritten after its chunk was made: the chunk is made again.
  fake.write_pair(pairs[4].rainy, pairs[4].clean, "new")
  again = list(build_cache.converted_pairs(pairs, "x", cache, chunk_size=2))
  assert calls == [pairs[4].id]
  np.testing.assert_array_equal(_decode(again[4]["clean"]), fake.clean_image("new"))


def test_a_file_changed_while_its_chunk_is_read_is_converted_again(tmp_path):
  pairs = _pairs(str(tmp_path), ("RGB", "RGB"))
  stream = build_cache.converted_pairs(pairs, "x", str(tmp_path / "cache"), chunk_size=2)
  next(stream)  # the chunk holding both pairs exists now
  fake.write_pair(pairs[1].rainy, pairs[1].clean, "changed", size=(fake.H, fake.W + 4))
  os.utime(pairs[1].rainy, ns=(1, 1))  # a different mtime even on coarse clocks
  second = next(stream)
  assert _decode(second["rainy"]).shape == (fake.H, fake.W + 4, 3)


_KILLED_BUILD = textwrap.dedent("""\
    import os, signal, sys
    import tensorflow_datasets as tfds
    from nasnet_jax.data import build_cache, pipeline
    build_cache.CHUNK_SIZE = 1
    build_cache.default_num_threads = lambda: 1
    real, calls = build_cache.convert_pair, []
    def convert_then_die(pair):
      calls.append(pair.id)
      if len(calls) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
      return real(pair)
    build_cache.convert_pair = convert_then_die
    pipeline.get_builder("spa_data", sys.argv[1]).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=sys.argv[2]))
""")


def _build(data_dir, manual_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = pipeline.get_builder("spa_data", str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _contents(builder):
  out = {}
  for split in sorted(builder.info.splits):
    source = builder.as_data_source(split=split)
    out[split] = [
      (pipeline.as_text(e["id"]), e["rainy"].tobytes(), e["clean"].tobytes())
      for e in (source[i] for i in range(len(source)))
    ]
  return out


def test_a_build_killed_mid_conversion_resumes_where_it_stopped(tmp_path, monkeypatch):
  manual_dir = str(tmp_path / "manual")
  fake.spa_data(manual_dir)  # 7 pairs to convert: test 3, train 4 (one unreadable)
  data_dir = tmp_path / "tfds"
  proc = run_script(["-c", _KILLED_BUILD, str(data_dir), manual_dir, "5"], check=False)
  assert proc.returncode == -signal.SIGKILL, proc.stderr
  chunks = glob.glob(f"{data_dir}/downloads/nasnet_jax_conversion/spa_data/*/*/*.msgpack")
  assert len(chunks) == 4  # the 5th was being converted when the process died
  assert not pipeline.get_builder("spa_data", str(data_dir)).is_prepared()

  calls = []
  real = build_cache.convert_pair
  monkeypatch.setattr(build_cache, "convert_pair", lambda p: calls.append(p.id) or real(p))
  monkeypatch.setattr(build_cache, "CHUNK_SIZE", 1)
  resumed = _build(data_dir, manual_dir)
  assert len(calls) == 3  # only what was not finished before the kill
  assert not os.path.exists(f"{data_dir}/downloads/nasnet_jax_conversion/spa_data")
  fresh = _build(tmp_path / "fresh", manual_dir)
  assert _contents(resumed) == _contents(fresh)
  assert builders.skipped_report(resumed) == builders.skipped_report(fresh)
  assert len(builders.skipped_report(resumed)) == 3


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + b"\0" * 40])
def test_is_stored_as_is_rejects_what_is_not_an_8bit_rgb_png(data):
  assert not build_cache.is_stored_as_is(data)
