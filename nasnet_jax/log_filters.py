"""Log lines the library's dependencies print that say nothing a user can act on."""

from __future__ import annotations

import contextlib
import logging as std_logging

# Log lines every run printed that say nothing the user can act on.
HARMLESS_LOG_LINES = (
  "OpenCV is not installed",  # TFDS: PIL decodes our PNGs
  "Unable to initialize backend",  # JAX probing TPU/GPU on a CPU host
  # TFDS looking for an earlier build in a folder it is about to build into
  "has no dataset_info.json",
  "for deletion",  # orbax after a resume
  "read_only=True",  # orbax, restoring read-only
  "Given directory is read only",
  # orbax's background writer threads; the same error reaches the caller, which says it
  # in one line (checkpointing.save).
  "_SignalingThread.run() raised an exception",
)


class DropHarmless(std_logging.Filter):
  """Drops the records whose message holds one of ``HARMLESS_LOG_LINES``."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(line in message for line in HARMLESS_LOG_LINES)


@contextlib.contextmanager
def harmless_lines_dropped():
  """Within the block, ``HARMLESS_LOG_LINES`` are not logged (for the library's own calls
  into orbax, e.g. a read-only restore, whatever the caller's logging setup)."""
  drop = DropHarmless()
  logger = std_logging.getLogger("absl")
  logger.addFilter(drop)
  try:
    yield
  finally:
    logger.removeFilter(drop)
