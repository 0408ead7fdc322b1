"""Several processes, as on several hosts: two CPU processes on this machine, joined by
jax.distributed (a localhost coordinator; CPU collectives through gloo)."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from nasnet_jax import command_line
from tests import fake_datasets as fake
from tests.conftest import ROOT, config_flags_for, run_script


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start_processes(script, args, n=2, per_process=None):
  """``n`` processes of ``python script args``, joined by a localhost coordinator;
  ``per_process[i]`` adds arguments to process i."""
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return [
    subprocess.Popen(
      [
        sys.executable,
        script,
        f"--coordinator_address=localhost:{port}",
        f"--num_processes={n}",
        f"--process_id={i}",
      ]
      + list(args)
      + list((per_process or {}).get(i, ())),
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(n)
  ]


def finish(procs, timeout=300):
  outs = [p.communicate(timeout=timeout)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  return outs


def train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {m["step"]: m["loss"] for m in map(json.loads, f) if "loss" in m}


def checkpoint_steps(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
  """A folder tree of pairs, not yet built: (manual_dir, data_dir)."""
  root = tmp_path_factory.mktemp("multihost")
  fake.paired_folders(str(root / "manual"))
  return str(root / "manual"), str(root / "tfds")


def flags_for(pairs, **overrides):
  manual_dir, data_dir = pairs
  values = {
    "data.name": "paired_folders/multihost",
    "data.manual_dir": manual_dir,
    "data.train_split": "Rain13K",
    "data.eval_split": "Test100",
    "eval.max_images": 0,
  }
  values.update(overrides)
  return config_flags_for(data_dir, **values)


@pytest.fixture(scope="module")
def two_process_run(pairs, tmp_path_factory):
  """Two train.py processes from an unprepared data_dir (host 0 builds it, the other
  waits), then the same run in one process over two CPU devices. Rain is rendered on the
  device over every pair, so each row of the global batch gets its own draw: the losses
  agree only if both topologies assemble the global batch in the same order."""
  root = tmp_path_factory.mktemp("runs")
  flags = flags_for(
    pairs,
    total_steps=6,
    log_every_steps=1,
    **{"data.synthetic_rain_fraction": 1.0, "data.synthetic_rain_type": "streak"},
  )
  outs = finish(start_processes("train.py", [f"--workdir={root / 'two'}"] + flags))
  run_script(["train.py", f"--workdir={root / 'one'}", "--cpu_devices=2"] + flags)
  return root / "two", root / "one", outs


def test_two_processes_train_as_one_process_on_two_devices(two_process_run):
  two, one, outs = two_process_run
  assert "downloaded and prepared" in outs[0] or "Generating" in outs[0]
  losses = train_losses(two)
  assert sorted(losses) == list(range(1, 7))
  assert losses == pytest.approx(train_losses(one), rel=1e-5)
  # One set of checkpoints and logs, written once.
  assert checkpoint_steps(two) == checkpoint_steps(one)
  with open(two / "metrics.jsonl") as f:
    assert len([line for line in f if '"loss"' in line]) == 6


def test_evaluation_over_two_processes_gives_the_one_process_table(
  two_process_run, pairs, tmp_path
):
  two, _, _ = two_process_run
  flags = flags_for(pairs)
  finish(
    start_processes("evaluate.py", flags + [f"--workdir={two}", f"--output_dir={tmp_path / 'two'}"])
  )
  run_script(["evaluate.py", f"--workdir={two}", f"--output_dir={tmp_path / 'one'}"] + flags)

  def table(folder):
    with open(folder / "per_image.csv") as f:
      return list(csv.DictReader(f))

  rows = table(tmp_path / "two")
  assert len(rows) == 2 and rows == table(tmp_path / "one")


def test_sigterm_to_one_process_stops_both_at_the_same_step_and_resumes(pairs, tmp_path):
  flags = flags_for(
    pairs, total_steps=100000, log_every_steps=1, eval_every_steps=0, checkpoint_every_steps=100000
  )
  procs = start_processes("train.py", [f"--workdir={tmp_path}"] + flags)
  deadline = time.time() + 300
  metrics = tmp_path / "metrics.jsonl"
  while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size):
    assert all(p.poll() is None for p in procs), [p.communicate()[0][-3000:] for p in procs]
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGTERM)
  started = time.time()
  outs = finish(procs, timeout=120)
  assert time.time() - started < 60
  assert "SIGTERM received" in outs[1] and "another host" in outs[0]
  stopped = [int(out.split("Stopped at step ")[1].split()[0]) for out in outs]
  assert stopped[0] == stopped[1] and checkpoint_steps(tmp_path) == [stopped[0]]
  # The same two commands, to a nearer end, resume and finish.
  flags = flags_for(
    pairs,
    total_steps=stopped[0] + 2,
    log_every_steps=1,
    eval_every_steps=0,
    checkpoint_every_steps=100000,
  )
  outs = finish(start_processes("train.py", [f"--workdir={tmp_path}"] + flags))
  assert all(f"Resumed from {tmp_path / 'checkpoints'}/{stopped[0]}" in out for out in outs)
  assert max(train_losses(tmp_path)) == stopped[0] + 2


def test_a_data_dir_that_is_not_shared_stops_every_host_in_one_line(pairs, tmp_path):
  """Host 1 looks in another folder than the one host 0 built: both exit with the same
  one-line error instead of host 0 training alone into a collective that never returns."""
  manual_dir, _ = pairs
  flags = flags_for((manual_dir, str(tmp_path / "host0")), total_steps=2)
  procs = start_processes(
    "train.py",
    [f"--workdir={tmp_path / 'run'}"] + flags,
    per_process={1: [f"--config.data.data_dir={tmp_path / 'host1'}"]},
  )
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 1, out[-3000:]
    assert "host(s) 1 do not see 'paired_folders/multihost'" in out, out[-3000:]
    assert "Traceback" not in out


@pytest.mark.parametrize(
  "values, message",
  [
    (dict(coordinator_address="localhost:1234"), "also needs --num_processes, --process_id"),
    (dict(coordinator_address="h:1", num_processes=2, process_id=2), "must be in 0 .. "),
  ],
)
def test_distributed_flags_are_checked(values, message, capsys):
  flags = dict(distributed=False, coordinator_address=None, num_processes=None, process_id=None)
  flags.update(values)
  with pytest.raises(SystemExit) as exit_info:
    command_line.initialize_distributed(types.SimpleNamespace(**flags))
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1
