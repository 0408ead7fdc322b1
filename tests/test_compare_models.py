"""benchmarks/compare_models.py on the tiny dataset: every model is scored the same way,
its gains per rain kind and its clean-photo score are what evaluation computes, and both
backends are timed."""

import importlib.util
import json

import pytest

from benchmarks import compare_models
from nasnet_jax import evaluation, evaluation_report
from nasnet_jax.data import pipeline
from tests.test_export import tiny_export


def _installed(module):
  return importlib.util.find_spec(module) is not None


def test_the_table_scores_every_model_per_kind(tiny_data_dir, tmp_path, capsys):
  config_file = tmp_path / "tiny_config.py"
  config_file.write_text(
    "from tests.conftest import tiny_config\n\n\ndef get_config():\n"
    f"  return tiny_config({tiny_data_dir!r})\n"
  )
  nasnet, model, params = tiny_export(tmp_path / "nasnet")
  prenet, _, _ = tiny_export(
    tmp_path / "prenet", {"name": "prenet", "stages": 2, "blocks": 1, "features": 8}
  )
  out_json, out_md = tmp_path / "anchor.json", tmp_path / "anchor.md"
  assert (
    compare_models.main(
      [
        f"--models=nas={nasnet},pre={prenet}",
        f"--config={config_file}",
        "--repeats=1",
        "--timing_size=64",
        f"--json={out_json}",
        f"--markdown={out_md}",
      ]
    )
    == 0
  )
  results = json.loads(out_json.read_text())["results"]
  assert [r["name"] for r in results] == ["nas", "pre"]
  assert results[1]["model"]["name"] == "prenet"
  # The gains are evaluation's own numbers for that model on that split.
  source = pipeline.get_data_source("tiny_rain/mixed", "test", tiny_data_dir)
  rows = evaluation.evaluate_model(model, params, pipeline.eval_examples(source), ["y8"])
  expected = evaluation_report.summarize(rows)
  got = results[0]["summary"]
  for group in ("streak", "heldout_drops", "own", "heldout", "clean"):
    assert got[group]["psnr_y8"] == pytest.approx(expected[group]["psnr_y8"], abs=1e-6)
    assert got[group]["count"] == expected[group]["count"]
  onnx_installed = _installed("jax2onnx") and _installed("onnxruntime")
  for r in results:
    assert r["xla_s_per_mp"] > 0
    assert (r["onnxruntime_s_per_mp"] is not None) == onnx_installed
    assert r["onnxruntime_s_per_mp"] is None or r["onnxruntime_s_per_mp"] > 0
  table = out_md.read_text()
  gain = (
    expected["heldout_thin_streaks"]["psnr_y8"] - expected["heldout_thin_streaks"]["input_psnr_y8"]
  )
  nas_row = next(line for line in table.splitlines() if line.startswith("| nas |"))
  assert f"{gain:+.2f}" in nas_row and f"{expected['clean']['psnr_y8']:.2f} dB" in nas_row
  assert "| rainy input (PSNR) |" in table and "held-out drops" in table
  assert "commit" in capsys.readouterr().out


@pytest.mark.parametrize(
  "spec, message",
  [("a=x,a=y", "names a model twice"), ("justapath", "write NAME=SOURCE"), (",", "empty")],
)
def test_bad_model_lists_are_clear_errors(spec, message):
  with pytest.raises(ValueError, match=message):
    compare_models.parse_models(spec)
  assert compare_models.parse_models("pretrained:general") == [("general", "pretrained:general")]
