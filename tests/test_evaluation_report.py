"""The report: rows summarised per group, the printed table, and the files written."""

import csv
import json
import os

import pytest

from nasnet_jax import evaluation_report


def test_summary_separates_own_heldout_and_clean_rows():
  row = lambda t, inp, out: {
    "id": t,
    "rain_type": t,
    "input_psnr_y8": inp,
    "psnr_y8": out,
    "input_ssim_y8": 0.5,
    "ssim_y8": 0.9,
  }
  rows = [
    row("streak", 20.0, 26.0),
    row("drop", 22.0, 24.0),
    row("heldout_mist", 18.0, 19.0),
    row("clean", float("inf"), 40.0),
  ]
  summary = evaluation_report.summarize(rows)
  assert list(summary) == ["all", "own", "heldout", "streak", "drop", "heldout_mist", "clean"]
  assert summary["all"]["count"] == 3 and summary["all"]["psnr_y8"] == pytest.approx(23.0)
  assert summary["own"]["input_psnr_y8"] == pytest.approx(21.0)
  assert summary["heldout"]["psnr_y8"] == pytest.approx(19.0)
  assert summary["clean"]["psnr_y8"] == 40.0
  table = evaluation_report.format_table(summary, ["y8"])
  clean_line = [line for line in table.splitlines() if line.startswith("clean")][0]
  assert "40.00" in clean_line and "nan" not in clean_line and "inf" not in clean_line


def test_no_reference_rows_get_their_own_block_lower_is_better():
  rows = [
    {"id": "a", "input_niqe": 6.0, "niqe": 4.0},
    {"id": "b", "input_niqe": 8.0, "niqe": float("nan")},  # a flat image: NaN, left out
  ]
  summary = evaluation_report.summarize(rows)
  assert summary == {"all": {"count": 2, "input_niqe": 7.0, "niqe": 4.0}}
  lines = evaluation_report.format_table(summary, ["niqe"]).splitlines()
  assert lines[0].endswith("(no reference: lower is better)")
  assert lines[1].split() == ["all", "2", "niqe", "7.00", "4.00", "-3.00"]


def test_report_files_hold_every_row_and_the_summary(tmp_path):
  rows = [{"id": "a", "psnr_y8": 30.0}, {"id": "b", "psnr_y8": 32.0}]
  summary = evaluation_report.summarize(rows)
  out = tmp_path / "new" / "report"
  evaluation_report.write_report(rows, summary, str(out), {"protocols": ["y8"]})
  with open(out / "per_image.csv") as f:
    assert [(r["id"], float(r["psnr_y8"])) for r in csv.DictReader(f)] == [
      ("a", 30.0),
      ("b", 32.0),
    ]
  written = json.loads((out / "summary.json").read_text())
  assert written["protocols"] == ["y8"] and written["summary"]["all"]["psnr_y8"] == 31.0
  assert sorted(os.listdir(out)) == ["per_image.csv", "summary.json"]  # no temporaries left
