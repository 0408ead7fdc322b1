"""Scoring saved outputs against ground truth folders, and reading odd image files."""

import csv
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from nasnet_jax import evaluation, evaluation_report, image_io, metrics
from tests.conftest import remount, run_script


def save(path, array, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def folders(tmp_path):
  rng = np.random.default_rng(0)
  results, targets, inputs = (str(tmp_path / n) for n in ("results", "targets", "inputs"))
  pairs = {}
  for name in ("a", "b", "sub/c"):
    gt = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-10, 10, gt.shape), 0, 255).astype(np.uint8)
    rainy = np.clip(gt.astype(int) + 60, 0, 255).astype(np.uint8)
    save(os.path.join(targets, name + ".png"), gt)
    save(os.path.join(results, name + ".png"), pred)
    save(os.path.join(inputs, name + ".png"), rainy)
    pairs[name] = (pred, gt, rainy)
  return results, targets, inputs, pairs


def test_folders_are_paired_by_name_and_scored(folders):
  results, targets, inputs, pairs = folders
  rows = evaluation.evaluate_folders(results, targets, ("y8", "rgb"), input_dir=inputs)
  assert [r["id"] for r in rows] == ["a", "b", os.path.join("sub", "c")]
  for row in rows:
    pred, gt, rainy = pairs[row["id"].replace(os.sep, "/")]
    assert row["psnr_y8"] == pytest.approx(metrics.psnr(pred, gt, "y8"))
    assert row["ssim_rgb"] == pytest.approx(metrics.ssim(pred, gt, "rgb"))
    assert row["input_psnr_rgb"] == pytest.approx(metrics.psnr(rainy, gt, "rgb"))


def test_every_unscorable_file_is_listed_before_the_error(folders, capsys):
  """An extra result, a ground truth without result, a mis-sized result: all of them at
  once, then one error (a missing result would otherwise quietly score a subset)."""
  results, targets, _, pairs = folders
  save(os.path.join(results, "extra.png"), pairs["a"][0])
  os.remove(os.path.join(results, "b.png"))
  save(os.path.join(results, "a.png"), np.zeros((20, 30, 3), np.uint8))
  with pytest.raises(
    ValueError,
    match=r"^3 file\(s\) cannot be scored \(listed above\): every result needs a ground truth "
    r"of the same name and size, and every ground truth a result; nothing was written$",
  ):
    evaluation.evaluate_folders(results, targets)
  listed = capsys.readouterr().err.splitlines()
  assert len(listed) == 3
  assert any("extra.png: no ground truth extra.*" in line for line in listed)
  assert any("targets/b.png: no result b.*" in line for line in listed)
  assert any(
    re.search(r"results/a.png: is 30x20 but .*targets/a.png is 30x24", line) for line in listed
  )


def test_non_image_files_are_skipped_and_broken_images_named(folders, capsys):
  results, targets, _, _ = folders
  with open(os.path.join(results, "notes.txt"), "w") as f:
    f.write("not an image")
  assert len(evaluation.evaluate_folders(results, targets)) == 3
  assert "skipping 1 non-image file(s)" in capsys.readouterr().out
  with open(os.path.join(results, "b.png"), "wb") as f:
    f.write(b"garbage that is not a png")
  with pytest.raises(image_io.ImageReadError, match=r"b.png: not a readable image"):
    evaluation.evaluate_folders(results, targets)


def test_evaluate_cli_on_folders(folders, tmp_path):
  results, targets, inputs, _ = folders
  out = tmp_path / "scores"
  proc = run_script(
    [
      "evaluate.py",
      f"--results_dir={results}",
      f"--target_dir={targets}",
      f"--input_dir={inputs}",
      f"--output_dir={out}",
      "--protocols=y8,ydouble",
    ]
  )
  assert "ydouble" in proc.stdout and "input PSNR" in proc.stdout
  summary = json.loads((out / "summary.json").read_text())
  assert summary["summary"]["all"]["count"] == 3 and summary["protocols"] == ["y8", "ydouble"]
  save(os.path.join(results, "zzz.png"), np.zeros((24, 30, 3), np.uint8))
  bad = run_script(
    ["evaluate.py", f"--results_dir={results}", f"--target_dir={targets}", f"--output_dir={out}"],
    check=False,
  )
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: 1 file(s) cannot be scored")
  assert "zzz.png: no ground truth zzz.*" in bad.stderr
  # The earlier report is still there, untouched.
  assert json.loads((out / "summary.json").read_text()) == summary


def test_evaluate_cli_ydouble_ds_matches_the_step_by_step_reference(tmp_path):
  """evaluate.py --protocols=ydouble_ds on a 401x384 pair (ssim.m downsamples by 2)."""
  from tests.test_metrics import (  # pylint: disable=g-import-not-at-top
    _pair_of_size,
    gaussian_window,
    matlab_y_reference,
    np_ssim,
    ssim_m_downsample_reference,
  )

  pred, gt = _pair_of_size(401, 384, seed=5)
  for folder, image in (("results", pred), ("targets", gt)):
    os.makedirs(tmp_path / folder)
    save(str(tmp_path / folder / "big.png"), image)
  run_script(
    [
      "evaluate.py",
      f"--results_dir={tmp_path / 'results'}",
      f"--target_dir={tmp_path / 'targets'}",
      f"--output_dir={tmp_path / 'out'}",
      "--protocols=ydouble_ds",
    ]
  )
  with open(tmp_path / "out" / "per_image.csv") as f:
    row = next(csv.DictReader(f))
  (dp, f), (dg, _) = [
    ssim_m_downsample_reference(matlab_y_reference(x, False) * 255) for x in (pred, gt)
  ]
  assert f == 2
  assert float(row["ssim_ydouble_ds"]) == pytest.approx(
    np_ssim(dp, dg, gaussian_window(), 255), abs=2e-5
  )


# ----------------------------------------------------------------------------- real rain


@pytest.fixture(scope="module")
def real_rain(tmp_path_factory):
  """Two 'real rainy' photos (crops of the shipped photos, one as JPEG) and their
  'derained' outputs (blurred), no ground truth: (inputs, results, {name: (rainy, out)})."""
  from nasnet_jax.data import photos  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("real_rain")
  inputs, results = str(root / "inputs"), str(root / "results")
  pairs = {}
  for name, photo, box, ext in (
    ("cat", "chelsea", (50, 150, 100, 220), ".png"),
    ("sub/cup", "coffee", (100, 210, 200, 300), ".jpg"),
  ):
    top, bottom, left, right = box
    rainy = photos.load_photo(photo)[top:bottom, left:right]
    save(os.path.join(inputs, name + ext), rainy)
    rainy = image_io.read_image(os.path.join(inputs, name + ext))  # as decoded
    out = np.asarray(Image.fromarray(rainy).resize((rainy.shape[1] // 2, rainy.shape[0] // 2)))
    out = np.asarray(Image.fromarray(out).resize((rainy.shape[1], rainy.shape[0])))
    save(os.path.join(results, name + ".png"), out)
    pairs[name] = (rainy, out)
  return inputs, results, pairs


def test_folders_without_ground_truth_are_scored_with_no_reference(real_rain, capsys):
  inputs, results, pairs = real_rain
  rows = evaluation.evaluate_folders(results, None, ("niqe", "brisque"), input_dir=inputs)
  assert [r["id"] for r in rows] == ["cat", os.path.join("sub", "cup")]
  for row in rows:
    rainy, out = pairs[row["id"].replace(os.sep, "/")]
    assert list(row) == ["id", "input_niqe", "input_brisque", "niqe", "brisque"]
    assert row["niqe"] == metrics.niqe(out) and row["input_brisque"] == metrics.brisque(rainy)
  table = evaluation_report.format_table(evaluation_report.summarize(rows), ["niqe", "brisque"])
  assert "lower is better" in table.splitlines()[0]
  assert re.search(r"^all\s+2 niqe\s+[\d.]+\s+[\d.]+\s+[-+][\d.]+$", table, re.M)
  with pytest.raises(ValueError, match=r"^--protocols=y8 compare with ground truth: pass"):
    evaluation.evaluate_folders(results, None, ("y8", "niqe"))


def test_without_ground_truth_every_input_needs_a_result(real_rain, tmp_path, capsys):
  inputs, results, pairs = real_rain
  extra_input = tmp_path / "inputs"
  shutil.copytree(inputs, extra_input)
  save(str(extra_input / "dog.png"), pairs["cat"][0])
  with pytest.raises(
    ValueError,
    match=r"^1 file\(s\) cannot be scored \(listed above\): every result needs an input "
    r"of the same name, and every input a result; nothing was written$",
  ):
    evaluation.evaluate_folders(results, None, ("niqe",), input_dir=str(extra_input))
  assert "dog.png: no result dog.*" in capsys.readouterr().err


def test_ground_truth_and_no_reference_protocols_together(folders):
  """With a target, the no-reference scores sit beside PSNR/SSIM (96x96 images: NIQE's
  smallest)."""
  results, targets, _, _ = folders
  for folder in (results, targets):
    for name in ("a", "b", os.path.join("sub", "c")):
      os.remove(os.path.join(folder, name + ".png"))
  rng = np.random.default_rng(4)
  gt = np.clip(rng.normal(128, 40, (96, 100, 3)), 0, 255).astype(np.uint8)
  save(os.path.join(targets, "x.png"), gt)
  save(os.path.join(results, "x.png"), np.roll(gt, 1, axis=0))
  rows = evaluation.evaluate_folders(results, targets, ("y8", "niqe"))
  assert list(rows[0]) == ["id", "psnr_y8", "ssim_y8", "niqe"]
  assert rows[0]["niqe"] == metrics.niqe(np.roll(gt, 1, axis=0))


def test_evaluate_cli_on_real_rain_without_ground_truth(real_rain, tmp_path):
  inputs, results, pairs = real_rain
  out = tmp_path / "scores"
  proc = run_script(
    ["evaluate.py", f"--results_dir={results}", f"--input_dir={inputs}", f"--output_dir={out}"]
  )
  assert "(no reference: lower is better)" in proc.stdout
  assert re.search(r"^all\s+2 brisque ", proc.stdout, re.M)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["protocols"] == ["niqe", "brisque"] and summary["target_dir"] is None
  with open(out / "per_image.csv") as f:
    row = next(csv.DictReader(f))
  assert float(row["input_niqe"]) == pytest.approx(metrics.niqe(pairs["cat"][0]), abs=1e-9)
  bad = run_script(["evaluate.py", f"--results_dir={results}", "--protocols=y8"], check=False)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines() == [
    "error: --protocols=y8 compare with ground truth, which real rain has not: pass "
    "--target_dir=GT, or use --protocols=niqe,brisque"
  ]


def test_evaluate_cli_derains_a_folder_of_real_photos(real_rain, tmp_path):
  """--pretrained --input_dir: the shipped model on real photos, scored without ground
  truth."""
  inputs, _, pairs = real_rain
  out = tmp_path / "model_scores"
  proc = run_script(
    [
      "evaluate.py",
      "--pretrained",
      f"--input_dir={inputs}",
      f"--output_dir={out}",
      "--protocols=niqe",
      "--save_images",
    ]
  )
  assert re.search(r"^all\s+2 niqe ", proc.stdout, re.M)
  with open(out / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["id"] for r in rows] == ["cat", os.path.join("sub", "cup")]
  derained = image_io.read_image(str(out / "images" / "cat.png"))
  assert float(rows[0]["niqe"]) == pytest.approx(metrics.niqe(derained), abs=1e-9)
  assert float(rows[0]["input_niqe"]) == pytest.approx(metrics.niqe(pairs["cat"][0]), abs=1e-9)


def test_a_read_only_output_dir_is_one_line_before_scoring(folders, tmpfs):
  results, targets, _, _ = folders
  disk = tmpfs(1 << 20)
  remount(disk, "ro")
  proc = run_script(
    [
      "evaluate.py",
      f"--results_dir={results}",
      f"--target_dir={targets}",
      f"--output_dir={disk}/scores",
    ],
    check=False,
  )
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.strip() == (
    f"error: --output_dir={disk}/scores is not writable (Read-only file system); pass a "
    "folder on a writable disk"
  )
  remount(disk, "rw")
  run_script(
    [
      "evaluate.py",
      f"--results_dir={results}",
      f"--target_dir={targets}",
      f"--output_dir={disk}/scores",
    ]
  )
  assert sorted(os.listdir(f"{disk}/scores")) == ["per_image.csv", "summary.json"]
