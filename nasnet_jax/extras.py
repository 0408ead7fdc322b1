"""The optional extras (``[onnx]``, ``[app]``): import one, or say which to install."""

from __future__ import annotations

import importlib


class MissingExtraError(ImportError):
  """An optional dependency is not installed; the message says which extra to install."""


def require(module: str, extra: str, what: str):
  """``importlib.import_module(module)``, or ``MissingExtraError`` saying that ``what``
  needs ``pip install 'nasnet-jax[extra]'``."""
  try:
    return importlib.import_module(module)
  except ImportError:
    raise MissingExtraError(
      f"{what} needs {module}, which is not installed: pip install 'nasnet-jax[{extra}]'"
    ) from None
