"""Tests for nasnet_jax/storage.py on a real full or read-only disk (a tmpfs)."""

import errno
import os

import pytest

from nasnet_jax import command_line, storage
from tests.conftest import remount


def test_a_read_only_folder_is_one_line_naming_the_flag(tmpfs):
  disk = tmpfs(1 << 20)
  os.makedirs(os.path.join(disk, "run"))
  remount(disk, "ro")
  for folder in (os.path.join(disk, "run"), os.path.join(disk, "new")):
    with pytest.raises(storage.NotWritableError, match=r"^--workdir=.* is not writable") as info:
      storage.check_writable(folder, "--workdir")
    assert "Read-only file system" in str(info.value) and "\n" not in str(info.value)
    assert command_line.is_user_error(info.value)
  remount(disk, "rw")
  storage.check_writable(os.path.join(disk, "new"), "--workdir")
  assert os.listdir(os.path.join(disk, "new")) == []  # the probe is removed


def test_a_full_disk_is_no_space_error(tmpfs):
  disk = tmpfs(64 << 10)
  with pytest.raises(OSError) as raw:
    with open(os.path.join(disk, "filler"), "wb") as f:
      f.write(b"\0" * (128 << 10))
  assert raw.value.errno == errno.ENOSPC
  error = storage.as_storage_error(raw.value, disk, "saving checkpoint 6", "checkpoint 3 is kept")
  assert isinstance(error, storage.NoSpaceError) and command_line.is_user_error(error)
  assert str(error) == (
    f"no space left in {disk} while saving checkpoint 6; checkpoint 3 is kept: free space "
    "there and rerun the same command"
  )
  with pytest.raises(storage.NoSpaceError, match=r"--output_dir=.*: no space left on its disk"):
    storage.check_writable(disk, "--output_dir")


def test_tensorstore_messages_and_causes_are_recognised():
  text = ValueError('RESOURCE_EXHAUSTED: Error writing "a/0": No space left on device')
  assert storage.is_no_space(text)
  wrapped = RuntimeError("save failed")
  wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system")
  assert storage.is_not_writable(wrapped) and not storage.is_no_space(wrapped)
  assert storage.as_storage_error(ValueError("bad shape"), "/w", "saving") is None
