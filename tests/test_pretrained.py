"""The general model shipped inside the package: nasnet_jax.pretrained() and the CLI."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import nasnet_jax
from nasnet_jax import metrics, pretrained_models
from nasnet_jax.data import photos, synthetic_rain


@pytest.fixture(scope="module")
def general():
  return nasnet_jax.pretrained()


def test_pretrained_derains_an_odd_size_photo_and_leaves_a_clean_one_alone(general):
  model, params = general
  clean = photos.load_photo("chelsea")[101:178, 150:251]  # 77 x 101, held out
  rainy = np.round(
    np.asarray(synthetic_rain.add_rain(jax.random.key(0), clean / 255.0, "streak", 0.5)) * 255
  ).astype(np.uint8)
  derained = nasnet_jax.derain(model, params, rainy)
  assert derained.shape == clean.shape and derained.dtype == np.uint8
  assert metrics.psnr(derained, clean) > metrics.psnr(rainy, clean) + 1.0
  untouched = nasnet_jax.derain(model, params, clean)
  assert metrics.psnr(untouched, clean) > 32  # nearly unchanged


def test_shipped_model_is_small_and_says_how_it_was_trained():
  path = pretrained_models.pretrained_path()
  size = sum(
    os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
  )
  assert size < 10 * 2**20
  with open(os.path.join(path, "config.json")) as f:
    config = json.load(f)
  with open(os.path.join(path, "metrics.jsonl")) as f:
    log = [json.loads(line) for line in f]
  assert log[-1]["step"] == config["total_steps"]  # the whole run is logged
  with open(os.path.join(path, "scores.json")) as f:
    scores = json.load(f)["summary"]
  assert {"own", "heldout", "clean"} <= set(scores)
  assert pretrained_models.available() == ["general"]
  with pytest.raises(FileNotFoundError, match="no pretrained model 'nope'"):
    nasnet_jax.pretrained("nope")


def test_the_shipped_scores_are_what_the_shipped_model_gives(general):
  """scores.json's clean-photo score re-computed: the four held-out photos, rain-free,
  derained whole by the shipped parameters and scored as evaluate.py scores them."""
  model, params = general
  with open(os.path.join(pretrained_models.pretrained_path(), "scores.json")) as f:
    clean = json.load(f)["summary"]["clean"]
  assert clean["count"] == len(photos.TEST_PHOTOS) == 4
  scores = []
  for name in photos.TEST_PHOTOS:
    photo = photos.load_photo(name)
    scores.append(metrics.psnr(nasnet_jax.derain(model, params, photo), photo, protocol="y8"))
  assert np.mean(scores) == pytest.approx(clean["psnr_y8"], abs=1e-3)


def test_cli_without_checkpoint_uses_the_shipped_model(tmp_path):
  photo = tmp_path / "photo.png"
  from PIL import Image  # pylint: disable=g-import-not-at-top

  Image.fromarray(photos.load_photo("coffee")[:45, :61]).save(photo)
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "nasnet_jax.derain_command",
      str(photo),
      f"--output_dir={tmp_path / 'out'}",
    ],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr
  assert "shipped general model" in proc.stdout
  with Image.open(tmp_path / "out" / "photo.png") as out:
    assert out.size == (61, 45)
