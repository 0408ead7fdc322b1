"""Tests for nasnet_jax/stop_request.py: a signal becomes a stop after the current step."""

import os
import signal

import pytest

from nasnet_jax import train_lib
from nasnet_jax.stop_request import StopRequest


def test_a_signal_is_polled_as_a_stop_and_handlers_are_restored():
  before = signal.getsignal(signal.SIGTERM)
  with StopRequest(train_lib.make_mesh()) as stop:
    assert stop.poll() is None
    os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread before kill returns
    assert stop.poll() == "SIGTERM"
    assert stop.poll() == "SIGTERM"  # stays set until the loop stops
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)  # a second signal gives up at once
  assert signal.getsignal(signal.SIGTERM) is before
