"""Where training metrics go: the console, ``metrics.jsonl`` and TensorBoard event files.

TensorBoard files are written with tensorboardX, which needs no TensorFlow (flax's and
clu's summary writers import it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping


def _format_seconds(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class MetricWriter:
  """Writes one JSON object per logged step to ``workdir/metrics.jsonl`` and TensorBoard.

  Only the host with ``enabled`` writes files; every host prints nothing else.
  """

  def __init__(self, workdir: str, enabled: bool = True, total_steps: int | None = None):
    self.enabled = enabled
    self.total_steps = total_steps
    self._jsonl = None
    self._tb = None
    if enabled:
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=10)

  def _write(self, step: int, values: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "time": round(time.time(), 3)}
    record.update({k: float(v) for k, v in values.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for k, v in values.items():
      self._tb.add_scalar(k, float(v), int(step))

  def write_train(
    self, step: int, values: Mapping[str, float], seconds_per_step: float | None = None
  ) -> None:
    """Logs training scalars and prints the progress line (step, loss, lr, img/s, ETA)."""
    self._write(step, {f"train/{k}" if k not in ("loss",) else k: v for k, v in values.items()})
    if not self.enabled:
      return
    eta = ""
    if seconds_per_step is not None and self.total_steps:
      eta = f"  ETA {_format_seconds((self.total_steps - step) * seconds_per_step)}"
    total = f"/{self.total_steps}" if self.total_steps else ""
    print(
      f"step {step}{total}  loss {values['loss']:.4f}  lr {values.get('lr', 0.0):.2e}  "
      f"{values.get('img_per_s', 0.0):.1f} img/s{eta}",
      flush=True,
    )

  def write_eval(self, step: int, values: Mapping[str, float]) -> None:
    """Logs evaluation scalars (``psnr``/``ssim`` and per-group details) and prints them."""
    values = dict(values)
    images, of_images = values.pop("images", None), values.pop("of_images", None)
    protocol = values.pop("protocol", None)
    self._write(step, values)
    if not self.enabled:
      return
    line = f"eval step {step}:  PSNR {values.get('psnr', float('nan')):.2f} dB"
    if "input_psnr" in values:
      line += f" (input {values['input_psnr']:.2f})"
    line += f"  SSIM {values.get('ssim', float('nan')):.4f}"
    if images is not None:
      subset = f"{images} of {of_images}" if of_images and of_images != images else images
      line += f"  [{protocol + ', ' if protocol else ''}{subset} images"
      line += "; evaluate.py scores them all]" if of_images and of_images != images else "]"
    print(line, flush=True)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def truncate_after(path: str, last_step: int) -> None:
  """On resume, moves the lines of the metrics log ``path`` past ``last_step`` (they will
  be recomputed) and any line cut by a kill to ``path.superseded``."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep, dropped = [], []
  for line in lines:
    try:
      (keep if json.loads(line).get("step", 0) <= last_step else dropped).append(line)
    except json.JSONDecodeError:
      dropped.append(line)  # a line cut by a kill
  if dropped:
    with open(path + ".superseded", "a") as f:
      f.writelines(dropped)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, path)


class StepTimer:
  """Training speed between two logs, leaving out in-training evaluations.

  ``lap(step)`` returns (steps, seconds) since the previous lap; ``exclude(seconds)``
  takes an evaluation's time out of the running interval, so that the next lap's img/s
  and s/step do not depend on whether an evaluation fell between the two logs.
  (Checkpoint saves and the fetch before a log still count.)
  """

  def __init__(self, step: int, clock=time.time):
    self._clock = clock
    self._step, self._start = step, clock()

  def exclude(self, seconds: float) -> None:
    self._start += seconds

  def lap(self, step: int) -> tuple[int, float]:
    now = self._clock()
    done, seconds = step - self._step, now - self._start
    self._step, self._start = step, now
    return done, seconds
