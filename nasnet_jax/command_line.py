"""What every command shares: errors in one line, and quiet logs unless asked.

``train.py``, ``evaluate.py``, ``nasnet-derain``, ``python -m nasnet_jax.export`` and
``python -m nasnet_jax.convert`` report a mistake the user can fix (a bad flag, a
misspelt config field, a missing file, a setting out of range) as one line on stderr,
``error: <what and the fix>``, and exit with status 1 (2 for a flag that does not parse),
instead of a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging as std_logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import flags, logging

from nasnet_jax import log_filters, storage
from nasnet_jax.extras import MissingExtraError

# Exceptions that carry a message meant for the user. train_lib.NonFiniteLossError is a
# RuntimeError; it is matched by name so this module imports nothing heavy.
USER_ERRORS = (
  ValueError,
  FileNotFoundError,
  FileExistsError,
  NotADirectoryError,
  IsADirectoryError,
  PermissionError,
  MissingExtraError,
  storage.NoSpaceError,
)
_USER_ERROR_NAMES = ("NonFiniteLossError", "OtherHostError")


def one_line(error: BaseException | str) -> str:
  """The message of ``error`` on one line (whitespace runs, newlines included, become one
  space), without the quotes ``KeyError`` adds."""
  if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
    text = error.args[0]
  else:
    text = str(error)
  return " ".join(text.split())


def print_error(error: BaseException | str) -> None:
  """Prints ``error: <message>`` on one line to stderr."""
  print(f"error: {one_line(error)}", file=sys.stderr, flush=True)


def fail(error: BaseException | str, status: int = 1) -> NoReturn:
  """``print_error(error)``, then exits with ``status``."""
  print_error(error)
  sys.exit(status)


def is_user_error(error: BaseException) -> bool:
  return isinstance(error, USER_ERRORS) or type(error).__name__ in _USER_ERROR_NAMES


def run(function: Callable[[], object]) -> object:
  """Calls ``function``; a user error becomes ``fail(error)`` (one line, status 1)."""
  try:
    return function()
  except Exception as e:  # pylint: disable=broad-except
    if is_user_error(e):
      fail(e)
    if isinstance(e, OSError):  # a full or read-only disk, wherever it was hit
      where = e.filename or f"a folder this command writes to ({e.strerror})"
      disk = storage.as_storage_error(e, where, "writing")
      if disk is not None:
        fail(disk)
    raise


def _config_field_error(error: BaseException, argv: Sequence[str]) -> str | None:
  """``--config.learning_rat=1e-3`` -> "--config.learning_rat: the config has no field
  'learning_rat'; did you mean --config.learning_rate?" (None if ``error`` is not about
  a config field). ml_collections raises AttributeError or KeyError with the name and
  its own suggestion."""
  text = error.args[0] if error.args else ""
  while isinstance(text, BaseException):  # AttributeError(KeyError(message))
    text = text.args[0] if text.args else ""
  if not isinstance(text, str):
    return None
  found = re.match(r"""^\W*'?(\w+)'?""", text)
  if not found:
    return None
  name = found.group(1)
  suggestion = re.search(r'Did you mean "(\w+)"', text)
  for arg in argv:
    flag = arg.split("=", 1)[0].lstrip("-")
    parts = flag.split(".")
    if len(parts) > 1 and name in parts[1:]:
      where = f"--{flag}"
      message = f"{where}: the config has no field {name!r}"
      if suggestion:
        fixed = ".".join(suggestion.group(1) if p == name else p for p in parts)
        return f"{message}; did you mean --{fixed}?"
      return f"{message}; see the config file for its fields"
  return None


def _load_config_files(argv: Sequence[str]) -> None:
  """ml_collections loads a --config file lazily, at its first use, and then raises a
  multi-line OSError deep inside the command: load it now and say which file failed."""
  for arg in argv:
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
      value = flags.FLAGS["config"].value
      try:
        value.get("seed")
      except OSError as e:
        if not os.path.isfile(path):
          fail(
            f"--config={path}: no such file; pass a config file, e.g. "
            "--config=configs/synthetic.py",
            status=2,
          )
        fail(f"--config={path} does not load: {e}", status=2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for ``app.run(main, flags_parser=parse_flags)``, with a bad flag,
  a misspelt ``--config.*`` field or a config file that does not load as one line."""
  try:
    rest = flags.FLAGS(argv)
    _load_config_files(argv)
    return rest
  except flags.Error as e:
    fail(f"{e} (--helpshort lists the flags)", status=2)
  except (AttributeError, KeyError) as e:
    message = _config_field_error(e, argv)
    if message is None:
      raise
    fail(message, status=2)
  except OSError as e:  # ml_collections: the --config file is missing or does not load
    fail(e, status=2)
  raise AssertionError("unreachable")


def quiet(verbose: bool = False) -> None:
  """Keeps the terminal to the command's own progress and real warnings: INFO lines and
  ``log_filters.HARMLESS_LOG_LINES`` only with ``verbose``."""
  if verbose:
    logging.set_verbosity(logging.INFO)
    return
  logging.set_verbosity(logging.WARNING)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  drop = log_filters.DropHarmless()
  for name in ("absl", "jax._src.xla_bridge", "orbax", ""):
    logger = std_logging.getLogger(name)
    logger.addFilter(drop)
    for handler in logger.handlers:
      handler.addFilter(drop)
  for name in ("jax._src.xla_bridge", "orbax"):
    std_logging.getLogger(name).setLevel(std_logging.WARNING)


def define_distributed_flags() -> None:
  """``--distributed``, ``--coordinator_address``, ``--num_processes`` and
  ``--process_id``, for ``initialize_distributed``; train.py and evaluate.py define them."""
  flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() first, with the "
    "cluster detected from the environment (SLURM, Cloud TPU, MPI, ...).",
  )
  flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0, to start "
    "several processes by hand (with --num_processes and --process_id).",
  )
  flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
  flags.DEFINE_integer(
    "process_id", None, "This process's index, 0 .. num_processes - 1 (with --coordinator_address)."
  )


def initialize_distributed(values) -> None:
  """Starts JAX's distributed runtime as the flags say (``define_distributed_flags``;
  ``values`` is ``absl.flags.FLAGS``): by hand when the coordinator, the number of
  processes and this process's index are all given, from the environment with
  ``--distributed``, not at all otherwise. Wrong combinations are one-line errors."""
  manual = {
    "--coordinator_address": values.coordinator_address,
    "--num_processes": values.num_processes,
    "--process_id": values.process_id,
  }
  given = [name for name, value in manual.items() if value is not None]
  if given and len(given) < len(manual):
    missing = [name for name in manual if name not in given]
    fail(
      f"{', '.join(given)} also needs {', '.join(missing)} (all three start the "
      "processes by hand; or pass --distributed alone to detect the cluster)",
      status=2,
    )
  if given:
    if values.num_processes < 1 or not 0 <= values.process_id < values.num_processes:
      fail(
        f"--process_id={values.process_id} must be in 0 .. --num_processes - 1 "
        f"(--num_processes={values.num_processes})",
        status=2,
      )
    import jax  # pylint: disable=g-import-not-at-top

    jax.distributed.initialize(
      coordinator_address=values.coordinator_address,
      num_processes=values.num_processes,
      process_id=values.process_id,
    )
  elif values.distributed:
    import jax  # pylint: disable=g-import-not-at-top

    jax.distributed.initialize()
