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
import errno
import fcntl
import json
import os
import socket

import jax

from nasnet_jax import hosts

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
    refused = self._acquire() if jax.process_index() == 0 else None
    if hosts.failed_hosts(refused is None):  # process 0's verdict, on every host
      raise WorkdirInUseError(refused or self._in_use("process 0 of this job says which"))
    return self

  def _in_use(self, who: str) -> str:
    return (
      f"{os.path.dirname(self.path)} is in use by another training run ({who}); "
      "wait for it to finish or stop it, or pass another --workdir"
    )

  def _acquire(self) -> str | None:
    """Takes the lock; returns why it cannot instead, or None. A file system without
    locks (Lustre without ``-o flock``, NFSv3 without lockd) trains unlocked, warned."""
    try:
      self._file = open(self.path, "a+")
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      self._close()
      return self._in_use(_holder(self.path))
    except OSError as e:
      self._close()
      if e.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP):
        print(
          f"WARNING: {self.path}: this file system has no locks ({e.strerror}); a second "
          "run on this workdir would not be refused",
          flush=True,
        )
        return None
      return (
        f"the run's lock file {self.path} cannot be taken ({e.strerror}); fix it or pass "
        "another --workdir"
      )
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
    os.fsync(self._file.fileno())  # NFS: a second run on another host reads it now
    return None

  def _close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __exit__(self, *exc) -> bool:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None
    return False
