"""Faults a user's machine throws at train.py and evaluate.py, created for real: a full
disk while a checkpoint is written, a read-only workdir, two runs on one workdir, a
damaged dataset shard. Each is one line naming the thing and the fix, exit status 1, no
traceback, nothing already written lost, and the same command resumes afterwards."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys

from tests.conftest import ROOT, config_flags_for, remount, run_script


def _train(data_dir, workdir, check=False, **overrides):
  flags = config_flags_for(data_dir, **{"eval.num_sample_images": 0, **overrides})
  return run_script(["train.py", *flags, f"--workdir={workdir}"], check=check)


def _one_line_error(proc, *needles):
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, proc.stderr
  for needle in needles:
    assert needle in errors[0], errors[0]
  return errors[0]


def _steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def _fill(folder, leave):
  """Fills the disk of ``folder``, then frees ``leave`` bytes."""
  path = os.path.join(folder, "filler")
  with open(path, "wb", buffering=0) as f:  # unbuffered: closing has nothing left to write
    try:
      while True:
        f.write(b"\1" * (1 << 16))
    except OSError:
      pass
  os.truncate(path, max(os.path.getsize(path) - leave, 0))
  return path


def test_a_full_disk_and_a_read_only_workdir_lose_nothing_and_resume(tiny_data_dir, tmpfs):
  disk = tmpfs(8 << 20)
  workdir = os.path.join(disk, "run")
  _train(tiny_data_dir, workdir, check=True, total_steps=3)
  assert _steps(workdir) == [3]
  # The disk fills up while checkpoint 6 is written.
  filler = _fill(disk, leave=48 << 10)  # room for the logs, not for a checkpoint
  proc = _train(tiny_data_dir, workdir)
  _one_line_error(
    proc,
    f"no space left in {workdir}/checkpoints while saving checkpoint 6",
    "checkpoint 3 is kept",
    "free space",
  )
  assert _steps(workdir) == [3]
  assert not glob.glob(os.path.join(workdir, "checkpoints", "*tmp*"))  # no half checkpoint
  os.remove(filler)
  # The workdir's disk becomes read-only: said before anything is built.
  before = sorted(os.listdir(workdir))
  remount(disk, "ro")
  proc = _train(tiny_data_dir, workdir)
  _one_line_error(proc, f"--workdir={workdir} is not writable", "Read-only file system")
  assert "Model nasnet" not in proc.stdout  # stopped before the model was built
  remount(disk, "rw")
  assert sorted(os.listdir(workdir)) == before
  # Both gone: the same command resumes from checkpoint 3.
  proc = _train(tiny_data_dir, workdir, check=True)
  assert "Resumed from" in proc.stdout and _steps(workdir) == [3, 6]


def test_a_second_run_on_the_same_workdir_is_refused(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  flags = config_flags_for(
    tiny_data_dir, total_steps=100_000, log_every_steps=1, checkpoint_every_steps=5
  )
  first = subprocess.Popen(
    [sys.executable, "train.py", *flags, f"--workdir={workdir}"],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  try:
    for line in first.stdout:  # training: the first run holds the lock
      if line.startswith("step "):
        break
    second = _train(tiny_data_dir, workdir)
    _one_line_error(
      second, f"{workdir} is in use by another training run", f"process id {first.pid}"
    )
  finally:
    first.send_signal(signal.SIGKILL)  # kill -9 leaves the lock file, not the lock
    first.wait()
  lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
  records = [json.loads(line) for line in lines if line.strip().endswith("}")]
  steps = [r["step"] for r in records if "loss" in r]
  assert steps and len(steps) == len(set(steps))  # the refused run logged no step
  proc = _train(tiny_data_dir, workdir, check=True, total_steps=6)
  assert "Traceback" not in proc.stderr


def test_a_damaged_shard_is_named_with_how_to_rebuild(tiny_data_dir, tmp_path):
  damaged = str(tmp_path / "data")
  shutil.copytree(tiny_data_dir, damaged)
  shards = {}
  for split in ("train", "test"):
    (shard,) = glob.glob(
      os.path.join(damaged, "tiny_rain", "mixed", "*", f"*-{split}.array_record*")
    )
    os.truncate(shard, os.path.getsize(shard) // 2)  # a copy cut short
    shards[split] = shard
  proc = _train(damaged, str(tmp_path / "run"))
  _one_line_error(
    proc,
    f"{shards['train']}: damaged shard of dataset tiny_rain/mixed",
    f"delete {os.path.dirname(shards['train'])}",
  )
  # evaluate.py reads the test split's shard.
  proc = run_script(["evaluate.py", *config_flags_for(damaged), "--pretrained"], check=False)
  _one_line_error(proc, f"{shards['test']}: damaged shard")
