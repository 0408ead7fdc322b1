"""Tests for nasnet_jax/metric_writers.py: the metrics log and its truncation on resume."""

import json

from nasnet_jax import metric_writers


def test_logged_steps_are_json_lines(tmp_path, capsys):
  writer = metric_writers.MetricWriter(str(tmp_path), total_steps=10)
  writer.write_train(2, {"loss": 0.5, "lr": 1e-3, "img_per_s": 4.0}, seconds_per_step=1.0)
  writer.write_eval(2, {"psnr": 30.0, "ssim": 0.9, "images": 3, "of_images": 5, "protocol": "y8"})
  writer.close()
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 2]
  assert records[0]["loss"] == 0.5 and records[0]["train/lr"] == 1e-3
  assert records[1]["psnr"] == 30.0 and "images" not in records[1]
  out = capsys.readouterr().out
  assert "step 2/10  loss 0.5000" in out and "ETA 0:08" in out
  assert "3 of 5 images; evaluate.py scores them all" in out


def test_truncation_on_resume_keeps_the_restored_steps_and_moves_the_rest(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (2, 4, 6, 8)]
  path.write_text("".join(lines) + '{"step": 10, "lo')  # the last line cut by a kill
  metric_writers.truncate_after(str(path), 4)
  assert path.read_text() == "".join(lines[:2])
  superseded = (tmp_path / "metrics.jsonl.superseded").read_text()
  assert superseded == "".join(lines[2:]) + '{"step": 10, "lo'
  metric_writers.truncate_after(str(path), 4)  # nothing past step 4: unchanged
  assert path.read_text() == "".join(lines[:2])
  metric_writers.truncate_after(str(tmp_path / "absent.jsonl"), 0)  # no log yet: nothing


def test_step_timer_leaves_evaluation_out_of_the_speed():
  """An evaluation between two logs (periods that do not divide) is not counted as
  training time, and the steps before it still are."""
  now = [100.0]
  timer = metric_writers.StepTimer(0, clock=lambda: now[0])
  now[0] = 105.0  # steps 1-5 in 5 s, then an evaluation of 60 s
  now[0] += 60.0
  timer.exclude(60.0)
  now[0] += 5.0  # steps 6-10 in 5 s, then the log
  assert timer.lap(10) == (10, 10.0)
  now[0] += 4.0
  assert timer.lap(12) == (2, 4.0)
