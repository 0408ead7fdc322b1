"""evaluate_lib: which requests are refused (one line naming the flag), which protocols a
request gets, and a request scored through the library as evaluate.py does it."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import synthetic
from nasnet_jax import evaluate_lib, evaluation_report, metrics
from nasnet_jax.evaluate_lib import EvaluationRequest


@pytest.mark.parametrize(
  "request_fields, message",
  [
    ({"target_dir": "T"}, r"^--target_dir needs --results_dir"),
    ({}, r"^pass --config and --workdir \(or --pretrained\) to score a model"),
    ({"config": "synthetic", "workdir": "W", "pretrained": True}, r"^pass either --workdir or"),
    (
      {"config": "synthetic", "pretrained": True, "split": "real_rain"},
      r"^--split=real_rain derains the photos in config.eval.real_rain_dir: set it",
    ),
    (
      {"pretrained": True, "input_dir": "RAINY", "protocols": ["y8"]},
      r"^--protocols=y8 compare with ground truth, which real rain has not",
    ),
    (
      {"results_dir": "R", "protocols": ["psnr"]},
      r"^--protocols: unknown protocol\(s\) \['psnr'\]; choose from",
    ),
    ({"results_dir": "R", "protocols": "niqe"}, r"^protocols must be a list of names"),
    ({"pretrained": True, "max_images": -1}, r"^--max_images must be >= 0 \(0: all images\)"),
  ],
)
def test_refused_requests_name_the_flag_before_anything_is_loaded(request_fields, message):
  if request_fields.get("config") == "synthetic":
    request_fields = {**request_fields, "config": synthetic.get_config()}
  with pytest.raises(ValueError, match=message):
    evaluate_lib.evaluate(EvaluationRequest(**request_fields))


def test_protocols_default_to_the_config_or_to_no_reference_without_ground_truth():
  config = synthetic.get_config()
  choose = evaluate_lib.choose_protocols
  assert choose(EvaluationRequest(config=config), True) == list(config.eval.protocols)
  assert choose(EvaluationRequest(), True) == list(evaluate_lib.DEFAULT_PROTOCOLS)
  assert choose(EvaluationRequest(config=config), False) == list(metrics.NO_REFERENCE_PROTOCOLS)
  request = EvaluationRequest(config=config, protocols=["rgb", "niqe"])
  assert choose(request, True) == ["rgb", "niqe"]


def test_saved_outputs_are_scored_and_reported(tmp_path):
  rng = np.random.default_rng(0)
  results, targets = tmp_path / "results", tmp_path / "targets"
  for folder in (results, targets):
    folder.mkdir()
  gt = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
  Image.fromarray(gt).save(targets / "x.png")
  Image.fromarray(255 - gt).save(results / "x.png")
  result = evaluate_lib.evaluate(
    EvaluationRequest(results_dir=str(results), target_dir=str(targets), protocols=["rgb"])
  )
  assert result.output_dir == str(results) + "_scores"
  assert [row["id"] for row in result.rows] == ["x"]
  assert result.rows[0]["psnr_rgb"] == metrics.psnr(255 - gt, gt, "rgb")
  assert result.summary == evaluation_report.summarize(result.rows)
  assert result.table() == evaluation_report.format_table(result.summary, ["rgb"])
  written = json.loads(open(os.path.join(result.output_dir, "summary.json")).read())
  assert written["protocols"] == ["rgb"] and written["target_dir"] == str(targets)


def test_the_real_rain_split_is_the_configs_folder(tmp_path):
  config = synthetic.get_config()
  request = EvaluationRequest(config=config, split=evaluate_lib.REAL_RAIN_SPLIT)
  with pytest.raises(ValueError, match="set it"):
    evaluate_lib.real_rain_folder(request, request.split)
  config.eval.real_rain_dir = str(tmp_path)
  assert evaluate_lib.real_rain_folder(request, request.split) == str(tmp_path)
  other = EvaluationRequest(config=config, input_dir="mine", split=evaluate_lib.REAL_RAIN_SPLIT)
  assert evaluate_lib.real_rain_folder(other, other.split) == "mine"
  assert evaluate_lib.real_rain_folder(EvaluationRequest(config=config), "test") is None
