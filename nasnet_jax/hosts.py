"""Every host of a multi-host job reaches the same verdict, so none waits for ever.

A check that can fail on one host only (its disk is read-only, its copy of a dataset is
damaged) runs on every host; ``raise_on_every_host`` then gathers who failed and raises
on all of them: the host's own error where it failed, elsewhere a one-line error naming
the hosts that did. With one process it just raises the error, if any.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np


class OtherHostError(RuntimeError):
  """A check failed on another host of the job; that host's own error says why."""


def failed_hosts(ok: bool) -> list[int]:
  """The process indices where ``ok`` is False (every host must call this)."""
  if jax.process_count() == 1:
    return [] if ok else [0]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  flags = np.asarray(multihost_utils.process_allgather(np.array([ok], np.int32))).reshape(-1)
  return [int(i) for i in np.flatnonzero(flags == 0)]


def raise_on_every_host(error: BaseException | None, what: str) -> None:
  """Raises ``error`` here if it is set, and ``OtherHostError`` on the other hosts if it
  is set on any of them (every host must call this)."""
  failed = failed_hosts(error is None)
  if error is not None:
    raise error
  if failed:
    raise OtherHostError(
      f"{what} failed on host(s) {', '.join(map(str, failed))}: their own error says why; "
      "fix it there and rerun on every host"
    )


def check_on_every_host(check: Callable[[], object], what: str) -> None:
  """Runs ``check`` on every host; any exception it raises anywhere stops every host."""
  error = None
  try:
    check()
  except Exception as e:  # pylint: disable=broad-except
    error = e
  raise_on_every_host(error, what)
