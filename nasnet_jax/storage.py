"""A full, read-only or unwritable disk as a one-line error that says what to do.

``check_writable`` is called before a command builds or compiles anything, on each folder
it will write to; ``as_storage_error`` turns an error raised while writing (by Python,
orbax or tensorstore) into ``NoSpaceError`` or ``NotWritableError`` naming the folder, or
None when it is something else.
"""

from __future__ import annotations

import errno
import os
import uuid

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
# What tensorstore (orbax's writer) says instead of an errno.
NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded")
NOT_WRITABLE_TEXT = ("Read-only file system", "Permission denied")


class NoSpaceError(OSError):
  """The disk is full (or the quota spent) while writing; the message names the folder."""


class NotWritableError(PermissionError):
  """A folder is on a read-only file system or not writable by this user."""


def _causes(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def is_no_space(error: BaseException) -> bool:
  """Whether ``error`` (or one of its causes) is a full disk or a spent quota."""
  return any(
    getattr(e, "errno", None) in NO_SPACE_ERRNOS or any(t in str(e) for t in NO_SPACE_TEXT)
    for e in _causes(error)
  )


def is_not_writable(error: BaseException) -> bool:
  """Whether ``error`` (or one of its causes) is a read-only or forbidden write."""
  return any(
    getattr(e, "errno", None) in NOT_WRITABLE_ERRNOS or any(t in str(e) for t in NOT_WRITABLE_TEXT)
    for e in _causes(error)
  )


def as_storage_error(
  error: BaseException, folder: str, doing: str, kept: str = ""
) -> OSError | None:
  """``NoSpaceError`` / ``NotWritableError`` for ``error`` raised while ``doing`` (e.g.
  "saving checkpoint 300") in ``folder``, saying ``kept`` (what is safe) and the fix;
  None if ``error`` is not about the disk."""
  kept = f"; {kept}" if kept else ""
  if is_no_space(error):
    return NoSpaceError(
      f"no space left in {folder} while {doing}{kept}: free space there and rerun the same command"
    )
  if is_not_writable(error):
    return NotWritableError(
      f"{folder} is not writable (read-only file system or no permission) while {doing}"
      f"{kept}: make it writable or use another folder, and rerun"
    )
  return None


def check_writable(folder: str, flag: str) -> None:
  """Creates ``folder`` if needed and writes and removes a probe file in it, so that a
  read-only, forbidden or full disk is one line (naming ``flag``, e.g. "--workdir")
  before any work starts."""
  probe = os.path.join(folder, f".write_probe_{uuid.uuid4().hex}")
  try:
    os.makedirs(folder, exist_ok=True)
    with open(probe, "w") as f:
      f.write("probe\n")
  except OSError as e:
    if is_no_space(e):
      raise NoSpaceError(f"{flag}={folder}: no space left on its disk; free space and rerun") from e
    if is_not_writable(e):
      raise NotWritableError(
        f"{flag}={folder} is not writable ({e.strerror}); pass a folder on a writable disk"
      ) from e
    raise
  finally:
    if os.path.exists(probe):
      os.remove(probe)
