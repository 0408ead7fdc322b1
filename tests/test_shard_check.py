"""Tests for nasnet_jax/data/shard_check.py (train.py and evaluate.py: test_train_faults)."""

import glob
import os
import shutil
import types

import pytest
import tensorflow_datasets as tfds

from nasnet_jax.data import shard_check


def _builder(shards):
  instructions = [
    types.SimpleNamespace(filename=f, skip=0, take=n, examples_in_shard=n) for f, n in shards
  ]
  split = types.SimpleNamespace(file_instructions=instructions)
  return types.SimpleNamespace(info=types.SimpleNamespace(splits={"train": split}))


def test_a_read_error_names_the_shard_that_holds_the_record():
  class Broken:
    def __len__(self):
      return 5

    def __getitem__(self, index):
      if index == 3:
        raise RuntimeError("Corrupted Riegeli/records file: chunk header hash mismatch")
      if index >= 5:
        raise IndexError(index)
      return {"id": index}

  builder = _builder(
    [("/d/x-train.array_record-00000-of-00002", 2), ("/d/x-train.array_record-00001-of-00002", 3)]
  )
  source = shard_check.NamedReadErrors(Broken(), builder, "x/mixed", "train")
  assert len(source) == 5 and source[1] == {"id": 1}
  with pytest.raises(shard_check.DamagedDatasetError) as info:
    source[3]
  assert str(info.value).startswith(
    "/d/x-train.array_record-00001-of-00002: damaged shard of dataset x/mixed (RuntimeError: "
  )
  assert "delete /d and rerun" in str(info.value)
  with pytest.raises(IndexError):  # not damage: passed on as it is
    source[7]


def test_every_shard_is_opened_and_counted(tiny_data_dir, tmp_path):
  data = str(tmp_path / "data")
  shutil.copytree(tiny_data_dir, data)
  builder = tfds.builder_from_directory(glob.glob(os.path.join(data, "tiny_rain", "mixed", "*"))[0])
  shard_check.check_shards(builder, "tiny_rain/mixed", "train")
  (shard,) = builder.info.splits["train"].filenames
  shard = os.path.join(builder.data_dir, shard)
  os.remove(shard)
  with pytest.raises(shard_check.DamagedDatasetError, match="the file is missing"):
    shard_check.check_shards(builder, "tiny_rain/mixed", "train")


def test_the_wrapper_pickles_for_worker_processes():
  import pickle  # pylint: disable=g-import-not-at-top

  builder = _builder([("/d/x-train.array_record-00000-of-00001", 3)])
  source = shard_check.NamedReadErrors([{"id": 0}, {"id": 1}, {"id": 2}], builder, "x", "train")
  again = pickle.loads(pickle.dumps(source))
  assert len(again) == 3 and again[2] == {"id": 2}


def test_errors_that_are_not_damage_get_no_advice_to_delete():
  class Flaky:
    def __init__(self, failures):
      self.failures = failures

    def __len__(self):
      return 2

    def __getitem__(self, index):
      if self.failures:
        self.failures -= 1
        raise OSError(116, "Stale file handle")
      return {"id": index}

  builder = _builder([("/d/x-train.array_record-00000-of-00001", 2)])
  once = shard_check.NamedReadErrors(Flaky(1), builder, "x", "train")
  assert once[1] == {"id": 1}  # read again: the hiccup passed
  always = shard_check.NamedReadErrors(Flaky(10), builder, "x", "train")
  with pytest.raises(shard_check.DamagedDatasetError) as info:
    always[0]
  assert "cannot be read (OSError: [Errno 116] Stale file handle)" in str(info.value)
  assert "delete" not in str(info.value)
