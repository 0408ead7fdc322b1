"""Tests for nasnet_jax/checkpointing.py's saving under faults (restore paths: test_train)."""

import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

from nasnet_jax import checkpointing, storage

MODEL = {"name": "nasnet", "stages": 1}


def _state(seed=0, size=40_000):
  return {"w": np.random.default_rng(seed).random(size, dtype=np.float32)}  # incompressible


def test_a_checkpoint_folder_deleted_during_the_run_is_written_anew(tmp_path):
  manager = checkpointing.make_manager(str(tmp_path), keep=2)
  checkpointing.save(manager, 1, _state(size=8), {"index": 1}, MODEL)
  shutil.rmtree(tmp_path / "checkpoints")
  for step in (2, 3, 4):
    checkpointing.save(manager, step, _state(step, size=8), {"index": step}, MODEL)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "4"]


def test_a_full_disk_keeps_the_previous_checkpoints_and_no_half_written_one(tmpfs):
  disk = tmpfs(600 << 10)  # three checkpoints of 160 KB fit, not four
  manager = checkpointing.make_manager(disk, keep=5)
  saved = []
  with pytest.raises(storage.NoSpaceError) as info:
    for step in range(1, 10):
      checkpointing.save(manager, step, _state(step), {"index": step}, MODEL)
      saved.append(step)
  step = saved[-1] + 1
  assert str(info.value).startswith(
    f"no space left in {disk}/checkpoints while saving checkpoint {step}; "
    f"checkpoint {saved[-1]} is kept"
  )
  assert sorted(os.listdir(os.path.join(disk, "checkpoints"))) == [str(s) for s in saved]
  manager = checkpointing.make_manager(disk, keep=5)
  restored = manager.restore(
    saved[-1],
    args=ocp.args.Composite(state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()),
  )
  np.testing.assert_array_equal(restored["state"]["w"], _state(saved[-1])["w"])
  assert restored["data"] == {"index": saved[-1]}
