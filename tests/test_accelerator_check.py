"""benchmarks/accelerator_check.py in its smoke mode (toy sizes, this CPU): every section
runs, every correctness check passes, every speed row is measured in its own framework's
process, and the JSON report holds what finished when time runs out."""

import json
import time

import pytest

pytest.importorskip("torch")

from benchmarks import accelerator_check  # noqa: E402  pylint: disable=g-import-not-at-top


def test_smoke_run_checks_and_measures_everything(tmp_path):
  out, table = tmp_path / "check.json", tmp_path / "check.md"
  assert accelerator_check.main(["--smoke", f"--json={out}", f"--markdown={table}"]) == 0
  data = json.loads(out.read_text())
  sections = data["sections"]
  assert data["machine"]["backend"] == "cpu" and data["machine"]["smoke"]
  for name in accelerator_check.CORRECTNESS:
    assert sections[name]["ok"], (name, sections[name])
  conv = sections["conv_forms"]["rows"]
  assert len(conv) == 6 and all(r["form_used"] for r in conv)
  assert {r["dtype"] for r in conv} == {"float32", "bfloat16"}
  assert (
    sections["train_state_donated"]["deleted_after_step"]
    == sections["train_state_donated"]["state_buffers"]
    > 0
  )
  assert 0.95 <= sections["flop_count"]["analytic_over_xla"] <= 1.05
  # The paper's net itself (lowered, not run): the count the GPU run divides by.
  paper = accelerator_check.check_flop_count(accelerator_check.FULL)
  assert paper["ok"] and 0.95 <= paper["analytic_over_xla"] <= 1.05, paper
  assert len(sections["conv_speed"]["rows"]) == 8
  assert all(r["ms_forward_backward"] > 0 for r in sections["conv_speed"]["rows"])
  rows = sections["train_speed"]["rows"]
  assert sorted((r["framework"], r["dtype"], r["batch"]) for r in rows) == sorted(
    (framework, dtype, batch)
    for framework in ("jax", "torch")
    for dtype, batch in (("bfloat16", 4), ("bfloat16", 2), ("float32", 2))
  )
  for r in rows:
    assert "error" not in r, r
    assert r["images_per_s"] > 0 and r["analytic_tflop_per_s"] > 0
    assert r["fraction_of_bf16_peak"] is None  # a CPU has no bf16 peak
    if r["framework"] == "jax":
      assert r["speed_over_torch"] > 0
    else:
      assert r["layout"] == ("channels-last" if r["dtype"] == "bfloat16" else "NCHW")
  assert sections["targets"]["met"] is None
  text = table.read_text()
  assert "| conv_forms | yes |" in text and "| torch | float32 | 2 |" in text


def test_a_failed_check_fails_the_run(tmp_path, monkeypatch):
  monkeypatch.setattr(accelerator_check, "BF16_MIN_PSNR", 1000.0)
  out = tmp_path / "check.json"
  assert accelerator_check.main(["--smoke", "--sections=bf16_output", f"--json={out}"]) == 1
  section = json.loads(out.read_text())["sections"]["bf16_output"]
  assert not section["ok"] and all(r["psnr_bf16_vs_f32"] > 40 for r in section["rows"])


def test_sections_past_the_time_limit_are_recorded_as_not_run(tmp_path):
  out = tmp_path / "check.json"
  assert (
    accelerator_check.main(
      ["--smoke", "--time_limit_s=0", f"--json={out}", "--sections=export,train_speed"]
    )
    == 1
  )
  sections = json.loads(out.read_text())["sections"]
  assert sections["export"] == {
    "error": "out of time",
    "ok": False,
    "seconds": sections["export"]["seconds"],
  }
  assert sections["train_speed"]["error"] == "out of time"
  assert sections["targets"]["met"] is None
  with pytest.raises(SystemExit, match="unknown"):
    accelerator_check.main(["--sections=speed"])


def test_speed_rows_out_of_time_say_so_and_the_report_keeps_them(tmp_path):
  path = tmp_path / "report.json"
  report = accelerator_check.Report(str(path), {"device": "cpu"})
  section = accelerator_check.bench_train(
    accelerator_check.SMOKE, True, time.monotonic() - 1, report
  )
  assert len(section["rows"]) == 6
  assert all(r["error"] == "out of time" for r in section["rows"])
  assert json.loads(path.read_text())["sections"]["train_speed"]["rows"] == section["rows"]
  # A worker that runs past its time is stopped; its rows say why.
  rows = accelerator_check.train_rows(accelerator_check.SMOKE)[:1]
  [late] = accelerator_check._spawn("jax", True, rows, timeout=1.0)
  assert late["error"].startswith("out of time") and late["dtype"] == rows[0]["dtype"]
