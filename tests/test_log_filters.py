"""Tests for nasnet_jax/log_filters.py."""

import logging

from absl import logging as absl_logging

from nasnet_jax import log_filters


def test_only_the_known_harmless_lines_are_dropped():
  drop = log_filters.DropHarmless()
  record = lambda message: logging.LogRecord("absl", logging.WARNING, "f", 1, message, (), None)
  assert not drop.filter(record("OpenCV is not installed. We recommend using OpenCV"))
  assert not drop.filter(record("Unable to initialize backend 'tpu': not found"))
  assert not drop.filter(record("CheckpointManagerOptions.read_only=True, setting create=False."))
  assert not drop.filter(record("Given directory is read only=/w/checkpoints"))
  assert drop.filter(record("rain100h train: skipped 3 of 10 inputs; reasons in x"))


def test_the_library_drops_them_only_inside_its_block(caplog, monkeypatch):
  logger = logging.getLogger("absl")
  # Without the filters an earlier command_line.quiet() in this process left behind.
  monkeypatch.setattr(logger, "filters", [])
  monkeypatch.setattr(caplog.handler, "filters", [])
  with caplog.at_level(logging.WARNING, logger="absl"):
    with log_filters.harmless_lines_dropped():
      absl_logging.warning("Given directory is read only=/w/checkpoints")
      absl_logging.warning("a real warning")
    absl_logging.warning("Given directory is read only=/w/again")
  messages = [r.getMessage() for r in caplog.records]
  assert messages == ["a real warning", "Given directory is read only=/w/again"]
  assert not any(isinstance(f, log_filters.DropHarmless) for f in logger.filters)
