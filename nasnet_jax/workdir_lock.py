"""One training run per workdir: a second one is refused in one line naming the first.

Process 0 of a run holds an exclusive ``flock`` on ``WORKDIR/lock`` for the whole run
and writes its host, process id and start time into it. The kernel drops the lock when
the process ends, however it ends (``kill -9`` included), so a killed run never blocks
its own resume; the file's content is then stale and simply overwritten. The other hosts
of the same job (``jax.distributed``) take no lock of their own: they learn whether
process 0 got it, so every host of a refused job stops together instead of waiting for
the others. On NFS, Linux emulates ``flock`` with POSIX locks, which hold across hosts.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

import jax
import numpy as np

LOCK_FILE = "lock"


class WorkdirInUseError(FileExistsError):
  """Another run holds the workdir's lock."""


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      info = json.load(f)
    return (
      f"host {info.get('host', '?')}, process id {info.get('pid', '?')}, "
      f"started {info.get('started', '?')}"
    )
  except (OSError, ValueError):
    return "a process that has not written its name yet"


class WorkdirLock:
  """``with WorkdirLock(workdir):`` the run owns ``workdir`` (see the module docstring)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._file = None

  def __enter__(self) -> WorkdirLock:
    refused = None
    if jax.process_index() == 0:
      self._file = open(self.path, "a+")
      try:
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        refused = _holder(self.path)
        self._file.close()
        self._file = None
      else:
        self._file.seek(0)
        self._file.truncate()
        json.dump(
          {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "processes": jax.process_count(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
          },
          self._file,
        )
        self._file.write("\n")
        self._file.flush()
    if not _on_every_host(refused is None):
      who = refused or "another run (process 0 of this job says which)"
      raise WorkdirInUseError(
        f"{os.path.dirname(self.path)} is in use by another training run ({who}); "
        "wait for it to finish or stop it, or pass another --workdir"
      )
    return self

  def __exit__(self, *exc) -> bool:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None
    return False


def _on_every_host(ok: bool) -> bool:
  """Process 0's ``ok``, the same on every host of the job."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))
