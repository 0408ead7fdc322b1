"""A prepared dataset's damaged ``array_record`` shard as a one-line error naming it.

A disk error or a copy cut short leaves a shard that grain would fail on deep inside a
reader thread, naming neither the file nor the dataset. ``check_shards`` opens every
shard of a split before training or evaluation starts (a footer read each, cheap) and
compares its record count with the build's; ``NamedReadErrors`` wraps the data source so
that a record damaged further in is reported the same way when it is read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds
from array_record.python.array_record_module import ArrayRecordReader


class DamagedDatasetError(ValueError):
  """A shard of a prepared dataset is damaged, or cannot be read."""


# What the array_record / riegeli readers say of a file whose bytes are wrong.
DAMAGE_TEXT = ("Corrupt", "hash mismatch", "Riegeli", "truncated", "Unexpected end")


def _message(shard: str, name: str, reason: str) -> str:
  folder = os.path.dirname(shard)
  return (
    f"{shard}: damaged shard of dataset {name} ({reason}); rebuild it: delete {folder} "
    "and rerun the same command (it is built again, from manual_dir for a public dataset)"
  )


def _error(shard: str, name: str, error: BaseException) -> DamagedDatasetError:
  """Damaged bytes get the advice to rebuild; anything else (permissions, too many open
  files, a network file system's hiccup) does not: deleting would not help."""
  reason = _first_line(error)
  if any(text in str(error) for text in DAMAGE_TEXT):
    return DamagedDatasetError(_message(shard, name, reason))
  return DamagedDatasetError(
    f"{shard} of dataset {name} cannot be read ({reason}); check its permissions and the "
    "file system, then rerun"
  )


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def file_instructions(builder: tfds.core.DatasetBuilder, split: str) -> Sequence[Any]:
  """The shards (``filename``, ``skip``, ``take``, ``examples_in_shard``) behind ``split``."""
  return builder.info.splits[split].file_instructions


def check_shards(builder: tfds.core.DatasetBuilder, name: str, split: str) -> None:
  """Opens each shard of ``split``; ``DamagedDatasetError`` for one that does not open or
  holds another number of records than the build wrote."""
  for instruction in file_instructions(builder, split):
    shard = instruction.filename
    if not os.path.isfile(shard):
      raise DamagedDatasetError(_message(shard, name, "the file is missing"))
    reader = None
    try:
      reader = ArrayRecordReader(shard)
      count = reader.num_records()
      reader, opened = None, reader
      opened.close()  # a damaged file may raise only here
    except Exception as e:  # pylint: disable=broad-except
      if reader is not None:
        with contextlib.suppress(Exception):
          reader.close()
      raise _error(shard, name, e) from e
    if count != instruction.examples_in_shard:
      raise DamagedDatasetError(
        _message(
          shard, name, f"{count} records where the build wrote {instruction.examples_in_shard}"
        )
      )


class NamedReadErrors:
  """``source`` whose read errors name the shard and the dataset (``DamagedDatasetError``)."""

  def __init__(self, source, builder: tfds.core.DatasetBuilder, name: str, split: str):
    self._source = source
    self._name = name
    self._shards = [(i.filename, i.take) for i in file_instructions(builder, split)]

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index):
    try:
      return self._source[index]
    except (IndexError, KeyError, TypeError):
      raise
    except Exception:  # pylint: disable=broad-except
      pass
    try:  # once more: a network file system's hiccup passes, damaged bytes stay
      return self._source[index]
    except Exception as e:  # pylint: disable=broad-except
      raise _error(self._shard_of(index), self._name, e) from e

  def _shard_of(self, index) -> str:
    position = int(index) % max(len(self), 1)
    for shard, take in self._shards:
      if position < take:
        return shard
      position -= take
    return self._shards[-1][0] if self._shards else "?"

  def __getattr__(self, attribute):  # everything else: the wrapped source's
    if attribute.startswith("__") or attribute == "_source":  # e.g. while unpickling
      raise AttributeError(attribute)
    return getattr(self._source, attribute)
