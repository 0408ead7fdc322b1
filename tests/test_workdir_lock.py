"""Tests for nasnet_jax/workdir_lock.py: one run per workdir; a killed run leaves no lock."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nasnet_jax import command_line, workdir_lock
from tests.conftest import ROOT

HOLD = textwrap.dedent("""\
  import sys, time
  from nasnet_jax import workdir_lock
  with workdir_lock.WorkdirLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
""")


def _hold(workdir):
  proc = subprocess.Popen(
    [sys.executable, "-c", HOLD, str(workdir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
  )
  assert proc.stdout.readline().strip() == "locked"
  return proc


def test_a_second_run_is_refused_naming_the_first_until_it_is_killed(tmp_path):
  first = _hold(tmp_path)
  try:
    with pytest.raises(workdir_lock.WorkdirInUseError) as info:
      with workdir_lock.WorkdirLock(str(tmp_path)):
        pass
    message = str(info.value)
    assert f"process id {first.pid}" in message and str(tmp_path) in message
    assert "another --workdir" in message and "\n" not in message
    assert command_line.is_user_error(info.value)
  finally:
    os.kill(first.pid, signal.SIGKILL)  # kill -9: no chance to clean up
    first.wait()
  deadline = time.time() + 10
  while True:  # the kernel drops a dead process's flock
    try:
      with workdir_lock.WorkdirLock(str(tmp_path)) as lock:
        with open(lock.path) as f:
          assert f'"pid": {os.getpid()}' in f.read()
      break
    except workdir_lock.WorkdirInUseError:
      assert time.time() < deadline, "a killed run's lock was not released"
      time.sleep(0.1)


def test_the_lock_is_released_when_the_run_ends(tmp_path):
  with workdir_lock.WorkdirLock(str(tmp_path)):
    pass
  with workdir_lock.WorkdirLock(str(tmp_path)):
    pass
