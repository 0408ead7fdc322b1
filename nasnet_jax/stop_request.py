"""A stop on SIGTERM/SIGINT that every host of a multi-host run agrees on."""

from __future__ import annotations

import signal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


class StopRequest:
  """SIGTERM/SIGINT -> a stop, checkpointed, at a step every host agrees on.

  ``poll()`` is called once after each step is dispatched. With one process it returns
  the signal's name as soon as one arrived. With several, each host's flag goes into a
  tiny all-reduce dispatched after every step and read one step later (so no host waits
  for it): every host reads the same vote and stops after the same step, even when only
  one was signalled, instead of one host saving while the others enter the next step's
  all-reduce and wait for ever.
  """

  def __init__(self, mesh: Mesh):
    self.signal = None
    self._previous = {}
    self._pending = None
    if jax.process_count() > 1:
      self._flags_sharding = NamedSharding(mesh, P("data"))
      self._any = jax.jit(jnp.any, out_shardings=NamedSharding(mesh, P()))

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signal is not None:  # a second signal: give up immediately
      raise KeyboardInterrupt
    self.signal = signal.Signals(signum).name
    print(f"\n{self.signal} received: saving a checkpoint and stopping", flush=True)

  def poll(self) -> str | None:
    """Why to stop after the step just dispatched (the same on every host), or None."""
    if jax.process_count() == 1:
      return self.signal
    local = np.full((jax.local_device_count(),), self.signal is not None)
    vote = self._any(jax.make_array_from_process_local_data(self._flags_sharding, local))
    previous, self._pending = self._pending, vote
    if previous is None or not bool(previous):
      return None
    return self.signal or "a stop request on another host"

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False
