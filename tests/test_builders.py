"""The public-dataset builders, each from a tiny fake tree in every layout it accepts."""

import glob
import importlib
import os

import numpy as np
import pytest

from nasnet_jax import image_io
from nasnet_jax.data import builders, layouts, overlap, pipeline
from tests import fake_datasets as fake
from tests.conftest import ROOT, run_script

# (builder name, tree writer, put the archive one folder below manual_dir)
LAYOUTS = {
  "rain100h-prenet": ("rain100h", lambda r: fake.rain100_prenet(r, "H"), True),
  "rain100l-prenet": ("rain100l", lambda r: fake.rain100_prenet(r, "L"), False),
  "rain100h-rain200": ("rain100h", lambda r: fake.rain200(r, "H"), False),
  "rain100l-rain200": ("rain100l", lambda r: fake.rain200(r, "L"), True),
  "rain100l-jordere": ("rain100l", fake.rain200_jordere, False),
  "spa_data": ("spa_data", fake.spa_data, True),
  "rain_cityscapes-official": ("rain_cityscapes", fake.cityscapes_official, False),
  "rain_cityscapes-dafnet": ("rain_cityscapes", fake.cityscapes_dafnet, False),
  "mpid-streak": ("mpid/streak", lambda r: fake.mpid(r, "streak"), False),
  "mpid-drop": ("mpid/drop", lambda r: fake.mpid(r, "drop"), False),
  "mpid-mist": ("mpid/mist", lambda r: fake.mpid(r, "mist"), False),
  "raindrop": ("raindrop", fake.raindrop, True),
  "paired_folders": ("paired_folders/mine", fake.paired_folders, False),
}


def _tree(tmp_path, writer, nested):
  manual_dir = tmp_path / "manual"
  root = manual_dir / "extracted" if nested else manual_dir
  root.mkdir(parents=True)
  expected, skipped = writer(str(root))
  return str(manual_dir), expected, skipped


def _build(name, manual_dir, data_dir):
  builder = pipeline.get_builder(name, str(data_dir))
  builder.download_and_prepare(
    download_config=__import__("tensorflow_datasets").download.DownloadConfig(manual_dir=manual_dir)
  )
  return builder


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_builder_pairs_counts_and_skipped_report(layout, tmp_path):
  name, writer, nested = LAYOUTS[layout]
  manual_dir, expected, expected_skipped = _tree(tmp_path, writer, nested)
  builder = _build(name, manual_dir, tmp_path / "tfds")
  assert sorted(builder.info.splits) == sorted(expected)
  for split, ids in expected.items():
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(len(source))]
    got = sorted(pipeline.as_text(e["id"]) for e in examples)
    assert got == sorted(ids), split
    for e in examples:
      assert e["rainy"].dtype == np.uint8 and e["rainy"].shape[-1] == 3
      assert e["rainy"].shape == e["clean"].shape
      if not pipeline.as_text(e["id"]).endswith(".jpg"):
        # Lossless files: the partner found is the one the rainy image was made from.
        np.testing.assert_array_equal(fake.clean_for(e["rainy"]), e["clean"])
  report = builders.skipped_report(builder)
  counts = {s: sum(1 for r in report if r[0] == s) for s in expected}
  assert counts == expected_skipped
  assert all(reason for _, _, reason in report)
  found = [(m.split_a, m.id_a, m.split_b, m.id_b, m.kind) for m in overlap.overlap_report(builder)]
  assert found == (fake.RAINDROP_OVERLAP if name == "raindrop" else [])


def test_traps_are_reported_with_their_reasons(tmp_path):
  manual_dir, _, _ = _tree(tmp_path, fake.spa_data, False)
  report = builders.skipped_report(_build("spa_data", manual_dir, tmp_path / "tfds"))
  reasons = {path: reason for _, path, reason in report}
  assert "lists a directory" in reasons["real_world/274/274-14"]
  assert "does not exist" in reasons["real_world/999/999-1/999-1_0_0.png"]
  assert "not a readable image" in reasons["real_world/005/005-1/005-1_0_0.png"]
  manual_dir, _, _ = _tree(tmp_path / "r", fake.rain200, False)
  report = builders.skipped_report(_build("rain100h", manual_dir, tmp_path / "tfds"))
  assert [r[2] for r in report if r[0] == "test"][0].startswith("size 32x24 differs")


def test_prenet_decoys_are_not_inputs(tmp_path):
  root = str(tmp_path)
  fake.rain100_prenet(root, "L")
  listing = layouts.rain100_listings(root, "L")["train"]
  ids = [p.id for p in listing.pairs] + [s[0] for s in listing.skipped]
  assert not any("rainstreak" in i or "rainregion" in i for i in ids)
  assert [p.id.split("/")[-1] for p in listing.pairs] == ["rain-1.png", "rain-2.png", "rain-10.png"]


def test_sixteen_bit_gray_and_rgba_become_uint8_rgb(tmp_path):
  fake.write_pair(str(tmp_path / "a.png"), str(tmp_path / "b.png"), "k", mode="I;16")
  fake.write_pair(str(tmp_path / "c.png"), str(tmp_path / "d.png"), "k", mode="RGBA")
  for f in ("a.png", "b.png", "c.png", "d.png"):
    image = image_io.read_image(str(tmp_path / f))
    assert image.dtype == np.uint8 and image.shape == (fake.H, fake.W, 3)
  np.testing.assert_array_equal(
    image_io.read_image(str(tmp_path / "b.png"))[..., 0],
    np.repeat(fake.clean_image("k")[..., :1], 3, -1)[..., 0],
  )


@pytest.mark.parametrize(
  "make, message",
  [
    (lambda d: None, r"tfds/downloads/manual does not exist; pass --config.data.manual_dir"),
    (lambda d: str(d / "missing"), "does not exist"),
    (lambda d: (d / "empty").mkdir() or str(d / "empty"), "is empty"),
    (lambda d: (d / "other" / "x").mkdir(parents=True) or str(d / "other"), "found no"),
  ],
)
def test_bad_manual_dir_is_a_one_line_error_naming_it(tmp_path, make, message):
  manual_dir = make(tmp_path)
  with pytest.raises(ValueError, match=message) as info:
    pipeline.get_data_source("rain100h", "train", str(tmp_path / "tfds"), manual_dir)
  text = str(info.value)
  assert "\n" not in text and "rain100h" in text
  if manual_dir:
    assert os.path.abspath(manual_dir) in text
  assert not glob.glob(str(tmp_path / "tfds" / "rain100h" / "*" / "*.array_record*"))


def _unpaired_cityscapes(root):
  """DAF-Net's folders, but the ground truth named in a way no rule pairs."""
  for split, city in (("train", "bremen"), ("test", "munster")):
    rain, _ = fake._cityscapes_name(city, 7, 1)
    fake.write_pair(f"{root}/{split}/{rain}", f"{root}/image/{city}_7_gt.png", city)


def _mis_sized_test_split(root):
  """Train pairs; a test split whose only pair has images of different sizes."""
  fake.write_pair(f"{root}/train/input/a.png", f"{root}/train/target/a.png", "a")
  fake._save(f"{root}/test/input/b.png", fake.clean_image("b", 8, 12))
  fake._save(f"{root}/test/target/b.png", fake.clean_image("b", 10, 12))


@pytest.mark.parametrize(
  "name, writer, message",
  [
    (
      "rain_cityscapes",
      _unpaired_cityscapes,
      r"rain_cityscapes test: none of the 1 inputs in test could be used, e\.g\. "
      r"test/munster_\S+\.png: no clean partner \(image/munster_000000_000007_leftImg8bit\.\*",
    ),
    (
      "paired_folders/x",
      _mis_sized_test_split,
      r"paired_folders test: none of the 1 inputs in test/input could be used, e\.g\. "
      r"test/input/b\.png: .*size",
    ),
  ],
)
def test_a_split_with_nothing_usable_is_a_one_line_error_with_the_report(
  tmp_path, name, writer, message
):
  """Instead of TFDS's "No examples were yielded": the folder, one reason, the report."""
  root = tmp_path / "manual"
  writer(str(root))
  with pytest.raises(ValueError, match=message) as info:
    _build(name, str(root), tmp_path / "tfds")
  text = str(info.value)
  assert "\n" not in text
  report = text.rsplit(" ", 1)[-1]
  with open(report) as f:
    assert len(f.read().splitlines()) == 2  # header, the one input


def test_unknown_config_of_a_builder_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="mpid/fog"):
    pipeline.get_builder("mpid/fog", str(tmp_path))


def test_build_is_deterministic(tmp_path):
  manual_dir, _, _ = _tree(tmp_path, fake.paired_folders, False)
  orders = []
  for run in ("a", "b"):
    builder = _build("paired_folders/x", manual_dir, tmp_path / run)
    source = builder.as_data_source(split="Rain1400")
    orders.append([pipeline.as_text(source[i]["id"]) for i in range(len(source))])
  assert orders[0] == orders[1] and len(orders[0]) == 4


def test_a_build_says_it_builds_from_local_files_not_that_it_downloads(tmp_path, capsys):
  manual_dir, _, _ = _tree(tmp_path, fake.paired_folders, False)
  builder = _build("paired_folders/x", manual_dir, tmp_path / "tfds")
  printed = capsys.readouterr().out
  assert "Downloading" not in printed and "downloaded" not in printed
  assert f"Building {builder.info.full_name} into " in printed
  assert f"Built {builder.info.full_name} in {builder.data_dir}." in printed


def test_tfds_leftovers_of_a_killed_build_do_no_harm(tmp_path):
  manual_dir, expected, _ = _tree(tmp_path, fake.raindrop, False)
  data_dir = tmp_path / "tfds"
  # What kill -9 leaves behind: TFDS's temporary folder.
  (data_dir / "raindrop" / "incomplete.ABC123_1.0.0").mkdir(parents=True)
  builder = _build("raindrop", manual_dir, data_dir)
  assert {s: builder.info.splits[s].num_examples for s in expected} == {
    s: len(v) for s, v in expected.items()
  }


def test_paired_folder_labels_are_separate_builds(tmp_path):
  a, _, _ = _tree(tmp_path / "a", fake.paired_folders, False)
  b = tmp_path / "b"
  fake.write_pair(str(b / "set" / "input" / "1.png"), str(b / "set" / "target" / "1.png"), "z")
  first = pipeline.get_data_source("paired_folders/one", "Test100", str(tmp_path / "tfds"), a)
  second = pipeline.get_data_source("paired_folders/two", "set", str(tmp_path / "tfds"), str(b))
  assert len(first) == 2 and len(second) == 1


def _config_variants():
  """(path, argument) for every config file; files with VARIANTS take each one after ':'."""
  out = []
  for p in sorted(
    glob.glob(os.path.join(ROOT, "configs", "*.py"))
    + glob.glob(os.path.join(ROOT, "configs", "ablations", "*.py"))
  ):
    if p.endswith("__init__.py"):
      continue
    path = os.path.relpath(p, ROOT)
    module = importlib.import_module(path[:-3].replace(os.sep, "."))
    out.extend((path, v) for v in getattr(module, "VARIANTS", (None,)))
  return out


CONFIGS = _config_variants()


@pytest.mark.parametrize("path, variant", CONFIGS)
def test_every_config_names_a_dataset_a_split_and_protocols(path, variant, tmp_path):
  module = importlib.import_module(path[:-3].replace(os.sep, "."))
  config = module.get_config() if variant is None else module.get_config(variant)
  builder = pipeline.get_builder(config.data.name, str(tmp_path))
  assert builder.name in builders.BUILDERS + ("synthetic_rain",)
  from nasnet_jax import metrics  # pylint: disable=g-import-not-at-top

  assert set(config.eval.protocols) <= set(metrics.PROTOCOLS)
  from nasnet_jax.models import INPUT_STATS, create_model  # pylint: disable=g-import-not-at-top

  if config.model.name == "nasnet":
    assert config.model.input_normalization in ("",) + tuple(INPUT_STATS)
  create_model(config.model)
  if path.startswith(os.path.join("configs", "ablations")):
    assert config.data.name in ("spa_data", "rain100h")
  elif "synthetic" in path or "default" in path or "general" in path:
    pass
  elif config.model.name in ("ddsa", "dual_stage"):  # DRSformer's recipe
    assert (config.batch_size, config.data.crop_size, config.total_steps) == (8, 128, 300_000)
    assert (config.learning_rate, config.optimizer) == (3e-4, "adamw")
    assert config.loss == ("l1" if config.model.name == "ddsa" else "charbonnier")
  elif variant == "gpu":  # default.for_gpu: batch 16, lr scaled by sqrt(16 / 2), bf16
    assert (config.batch_size, config.data.crop_size, config.total_steps) == (16, 240, 300_000)
    assert config.learning_rate == pytest.approx(2e-4 * 8**0.5)
    assert config.model.dtype == "bfloat16" and config.data.num_threads == 8
  else:
    assert (config.batch_size, config.data.crop_size, config.total_steps) == (2, 240, 300_000)
    assert config.learning_rate == 2e-4


def test_ablation_variants_are_picked_after_a_colon():
  proc = run_script(
    [
      "-c",
      "import sys; from absl import app; "
      "from ml_collections import config_flags; "
      "F = config_flags.DEFINE_config_file('config'); "
      "app.run(lambda _: print(F.value.model.attention, F.value.model.stages, "
      "F.value.learning_rate))",
      "--config=configs/ablations/spa_data.py:senet",
    ]
  )
  assert proc.stdout.split() == ["se", "3", "0.0001"]
  proc = run_script(
    [
      "-c",
      "from absl import app; from ml_collections import config_flags; "
      "F = config_flags.DEFINE_config_file('config'); "
      "app.run(lambda _: print(F.value.model.stages))",
      "--config=configs/ablations/stages.py:2",
    ]
  )
  assert proc.stdout.split() == ["2"]
  proc = run_script(
    ["train.py", "--config=configs/ablations/spa_data.py:fog", "--workdir=/tmp/unused"], check=False
  )
  assert proc.returncode != 0 and "spa_data.py:fog: unknown ablation" in proc.stderr


def _tiny_flags(manual_dir, data_dir, **extra):
  values = {
    "model.stages": 1,
    "model.blocks": 1,
    "model.features": 8,
    "data.manual_dir": manual_dir,
    "data.data_dir": data_dir,
    "data.crop_size": 16,
    "data.num_threads": 1,
    "batch_size": 2,
    "total_steps": 4,
    "log_every_steps": 2,
    "eval_every_steps": 4,
    "checkpoint_every_steps": 4,
    "eval.num_sample_images": 1,
  }
  values.update(extra)
  return [f"--config.{k}={v}" for k, v in values.items()]


def test_spa_real_config_trains_and_evaluates_from_a_manual_dir(tmp_path):
  """The command users type first, on a fake SPA-Data tree (shrunk model and crops)."""
  manual_dir, expected, _ = _tree(tmp_path, fake.spa_data, True)
  workdir, data_dir = str(tmp_path / "work"), str(tmp_path / "tfds")
  run_script(
    ["train.py", "--config=configs/spa_real.py", f"--workdir={workdir}"]
    + _tiny_flags(manual_dir, data_dir)
  )
  proc = run_script(
    ["evaluate.py", "--config=configs/spa_real.py", f"--workdir={workdir}"]
    + _tiny_flags(manual_dir, data_dir)
  )
  assert f"{'all':<22} {len(expected['test']):>4} rgb" in proc.stdout
  assert os.path.exists(os.path.join(workdir, "eval_test", "per_image.csv"))


ONE_LAYOUT_PER_BUILDER = (
  "rain100h-prenet",
  "rain100l-rain200",
  "spa_data",
  "rain_cityscapes-official",
  "mpid-drop",
  "raindrop",
  "paired_folders",
)


def test_every_builder_feeds_training_and_evaluation(tmp_path, caplog):
  """One tiny run trains on a mixture of every builder, leaving out the training pair
  that raindrop's test_a repeats, then scores each test split."""
  from nasnet_jax import evaluation, evaluation_report, train_lib  # pylint: disable=g-import-not-at-top
  from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top

  data_dir = str(tmp_path / "tfds")
  mixture, eval_splits = [], {}
  for layout in ONE_LAYOUT_PER_BUILDER:
    name, writer, nested = LAYOUTS[layout]
    manual_dir, expected, _ = _tree(tmp_path / layout, writer, nested)
    train_split = "train" if "train" in expected else "Rain13K"
    mixture.append((name, 1.0, manual_dir, train_split))
    eval_splits[name] = (manual_dir, [s for s in expected if s != train_split][0])
  config = tiny_config(
    data_dir,
    **{
      "data.name": "raindrop",
      "data.manual_dir": mixture[5][2],
      "data.eval_split": "test_a",
      "data.crop_size": 16,
      "total_steps": 3,
      "checkpoint_every_steps": 0,
      "eval_every_steps": 0,
      "batch_size": 4,
    },
  )
  config.data.mixture = tuple(mixture)
  config.data.drop_test_overlap = True
  state = train_lib.train_and_evaluate(config, str(tmp_path / "work"))
  assert int(state.step) == 3
  left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
  assert left_out == [
    "raindrop train: left out 1 of 3 examples whose clean image is also "
    "in test_a (config.data.drop_test_overlap)"
  ]
  model = train_lib.create_model(config.model)
  for name, (manual_dir, split) in eval_splits.items():
    source = pipeline.get_data_source(name, split, data_dir, manual_dir)
    rows = evaluation.evaluate_model(
      model, state.params, pipeline.eval_examples(source), ("y8", "rgb")
    )
    summary = evaluation_report.summarize(rows)
    assert summary["all"]["count"] == len(source) > 0, name
    assert summary["all"]["input_psnr_y8"] > 0, name
  config.data.mixture = (("raindrop", "heavy"),)
  with pytest.raises(ValueError, match=r"config.data.mixture\[0\]: weight 'heavy'"):
    train_lib.train_and_evaluate(config, str(tmp_path / "work2"))
