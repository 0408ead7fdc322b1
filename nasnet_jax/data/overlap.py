"""Train/test overlap: clean images that appear in more than one split of a build.

Several public deraining sets have test images whose clean image is also in their
training split, exactly or resized / re-encoded. A model trained on them has seen the
answer, and its test score is too high. Every builder (``nasnet_jax.data.builders``, the
synthetic ``synthetic_rain``) therefore fingerprints the clean image of every example it
stores and, once all splits are written, compares every pair of splits:

* **exact**: the same decoded pixels (SHA-256 of the uint8 RGB array and its shape);
* **near**: a perceptual hash (``imagehash.phash``: a 64-bit sign pattern of the 8x8
  lowest DCT frequencies of a 32x32 grayscale thumbnail) at most ``MAX_NEAR_DISTANCE``
  bits apart, which a resized, re-encoded or slightly brightened copy is.

``MAX_NEAR_DISTANCE`` = 6 bits: resized copies and JPEG re-encodes at quality 95 stay
within it, different pictures (bar a stereo pair) stay outside; JPEG at quality 75 or 50
does not (7 bits). A wider threshold would flag unrelated images in sets of 600k; the
report gives every distance to judge by. The measurement is in ``benchmarks/RESULTS.md``
("The near-copy threshold of the overlap check").

Every matching pair is written to ``overlap.txt`` beside the build (tab-separated: split,
id and position of each side, ``exact`` or ``near``, the Hamming distance), with a
warning giving the counts. Published splits stay as published;
``config.data.drop_test_overlap=True`` (``without_overlap``) leaves the training
examples that share a clean image with another split out of training.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import os
from collections.abc import Iterable, Sequence

import imagehash
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image
from tensorflow_datasets.core import hashing

OVERLAP_REPORT = "overlap.txt"
MAX_NEAR_DISTANCE = 6
_HEADER = (
  "# clean images shared between splits: exact = same pixels, near = "
  f"imagehash.phash at most {MAX_NEAR_DISTANCE} bits apart; index = position in "
  "the built split\n"
  "# split_a\tid_a\tindex_a\tsplit_b\tid_b\tindex_b\tmatch\tdistance\n"
)
# Pairs of 64-bit hashes compared at once (bounds the memory of the near search).
_BLOCK = 1 << 22


def fingerprint(image: np.ndarray) -> tuple[str, int]:
  """(SHA-256 hex of the pixels and shape, 64-bit perceptual hash) of a uint8 (H, W, 3)."""
  image = np.ascontiguousarray(image, np.uint8)
  digest = hashlib.sha256(repr(image.shape).encode())
  digest.update(image.tobytes())
  bits = imagehash.phash(Image.fromarray(image)).hash.reshape(-1)
  return digest.hexdigest(), int(np.packbits(bits).view(">u8")[0])


def _popcount(x: np.ndarray) -> np.ndarray:
  if hasattr(np, "bitwise_count"):  # numpy >= 2
    return np.bitwise_count(x)
  return np.unpackbits(x.view(np.uint8)).reshape(*x.shape, 64).sum(-1)


@dataclasses.dataclass(frozen=True)
class Match:
  """Two examples of different splits whose clean images are the same or nearly so."""

  split_a: str
  id_a: str
  index_a: int
  split_b: str
  id_b: str
  index_b: int
  kind: str  # "exact" or "near"
  distance: int  # Hamming distance of the perceptual hashes

  def side(self, split: str) -> tuple[int, str] | None:
    """(index, id) of this match's example in ``split``, if it has one there."""
    if self.split_a == split:
      return self.index_a, self.id_a
    if self.split_b == split:
      return self.index_b, self.id_b
    return None


def tfds_positions(split: str, keys: Sequence[str]) -> np.ndarray:
  """Where TFDS stores each example of ``split`` generated with ``keys``: it writes them
  ordered by an MD5 of the key salted with the split name. ``without_overlap`` checks
  these positions against the stored ids before it trusts them."""
  hasher = hashing.Hasher(split)
  order = np.argsort([hasher.hash_key(k) for k in keys], kind="stable")
  positions = np.empty(len(keys), np.int64)
  positions[order] = np.arange(len(keys))
  return positions


class OverlapFinder:
  """Collects (split, key, fingerprint) of a build's examples and finds shared images."""

  def __init__(self):
    self._keys: dict[str, list[str]] = collections.defaultdict(list)
    self._sha: dict[str, list[str]] = collections.defaultdict(list)
    self._phash: dict[str, list[int]] = collections.defaultdict(list)

  def add(self, split: str, key: str, clean_print: tuple[str, int]) -> None:
    sha, phash = clean_print
    self._keys[split].append(key)
    self._sha[split].append(sha)
    self._phash[split].append(int(phash))

  def matches(self, max_distance: int = MAX_NEAR_DISTANCE) -> list[Match]:
    """Every pair of examples of two different splits with the same or a near clean image."""
    positions = {s: tfds_positions(s, keys) for s, keys in self._keys.items()}
    found = []
    for a, b in itertools.combinations(sorted(self._keys), 2):
      for i, j, distance in self._near_pairs(a, b, max_distance):
        exact = self._sha[a][i] == self._sha[b][j]
        found.append(
          Match(
            a,
            self._keys[a][i],
            int(positions[a][i]),
            b,
            self._keys[b][j],
            int(positions[b][j]),
            "exact" if exact else "near",
            int(distance),
          )
        )
    return sorted(found, key=lambda m: (m.split_a, m.id_a, m.split_b, m.id_b))

  def _near_pairs(self, a: str, b: str, max_distance: int):
    """(example of a, example of b, distance) for hashes within ``max_distance``:
    unique hashes compared in blocks, then expanded to the examples that carry them."""
    ua, inv_a = np.unique(np.asarray(self._phash[a], np.uint64), return_inverse=True)
    ub, inv_b = np.unique(np.asarray(self._phash[b], np.uint64), return_inverse=True)
    members_a = collections.defaultdict(list)
    for n, u in enumerate(inv_a.reshape(-1)):
      members_a[u].append(n)
    members_b = collections.defaultdict(list)
    for n, u in enumerate(inv_b.reshape(-1)):
      members_b[u].append(n)
    step = max(1, _BLOCK // max(1, len(ua)))
    for start in range(0, len(ub), step):
      block = ub[start : start + step]
      distances = _popcount(ua[:, None] ^ block[None, :])
      for ia, jb in zip(*np.nonzero(distances <= max_distance)):
        d = distances[ia, jb]
        for i in members_a[ia]:
          for j in members_b[start + jb]:
            yield i, j, d


def write_report(path: str, matches: Iterable[Match]) -> None:
  """Writes ``overlap.txt`` (a header, then one tab-separated line per match) atomically."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(_HEADER)
    for m in matches:
      f.write(
        f"{m.split_a}\t{m.id_a}\t{m.index_a}\t{m.split_b}\t{m.id_b}\t{m.index_b}\t"
        f"{m.kind}\t{m.distance}\n"
      )
  os.replace(tmp, path)


def read_report(path: str) -> list[Match] | None:
  """The matches in an ``overlap.txt``; None if there is no such file."""
  if not os.path.exists(path):
    return None
  matches = []
  with open(path) as f:
    for line in f:
      if line.startswith("#") or not line.strip():
        continue
      a, id_a, index_a, b, id_b, index_b, kind, distance = line.rstrip("\n").split("\t")
      matches.append(Match(a, id_a, int(index_a), b, id_b, int(index_b), kind, int(distance)))
  return matches


def summarize(name: str, matches: Sequence[Match], report: str) -> list[str]:
  """One warning line per pair of splits that share clean images."""
  by_pair = collections.defaultdict(list)
  for m in matches:
    by_pair[(m.split_a, m.split_b)].append(m)
  lines = []
  for (a, b), found in sorted(by_pair.items()):
    exact = sum(m.kind == "exact" for m in found)
    lines.append(
      f"{name}: {len({m.id_a for m in found})} examples of {a} and "
      f"{len({m.id_b for m in found})} of {b} share clean images: {exact} exact and "
      f"{len(found) - exact} near-duplicate pair(s), every one in {report} "
      "(--config.data.drop_test_overlap=True leaves them out of training)"
    )
  return lines


def dataset_name(builder: tfds.core.DatasetBuilder) -> str:
  """ "name/config" ("mpid/drop", "paired_folders/rain13k"), or "name" without configs."""
  config = builder.builder_config
  return f"{builder.name}/{config.name}" if config else builder.name


class BuildOverlapCheck:
  """What a builder does: ``add`` every stored example and call ``split_done`` after each
  split (the last one writes the report into the build folder); once TFDS has finished
  the build, ``log_summary`` warns with the counts (after TFDS's progress bars)."""

  def __init__(self, name: str, splits: Iterable[str]):
    self._name = name
    self._left = set(splits)
    self._finder = OverlapFinder()
    self.matches: list[Match] | None = None

  def add(self, split: str, key: str, clean_print: tuple[str, int]) -> None:
    self._finder.add(split, key, clean_print)

  def split_done(self, split: str, data_dir: str) -> None:
    """Writes ``overlap.txt`` into ``data_dir`` (the build's temporary folder, which TFDS
    renames when the build succeeds) once every split is done."""
    self._left.discard(split)
    if not self._left:
      self.matches = self._finder.matches()
      write_report(os.path.join(data_dir, OVERLAP_REPORT), self.matches)

  def log_summary(self, data_dir: str) -> None:
    """One warning per pair of splits sharing clean images, naming the finished report."""
    for line in summarize(self._name, self.matches or (), os.path.join(data_dir, OVERLAP_REPORT)):
      logging.warning(line)


def overlap_report(builder: tfds.core.DatasetBuilder) -> list[Match] | None:
  """The matches found when ``builder``'s dataset was built (None: built without checks)."""
  return read_report(os.path.join(builder.data_dir, OVERLAP_REPORT))


@dataclasses.dataclass(frozen=True)
class Subset:
  """The examples of a random-access ``source`` at ``indices``, in that order."""

  source: object
  indices: np.ndarray

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[i])]


def _ids_at(builder, split: str, indices: Iterable[int]) -> dict[int, str]:
  """The stored id of the examples at ``indices`` of ``split``, images left undecoded."""
  source = builder.as_data_source(
    split=split, decoders={"rainy": tfds.decode.SkipDecoding(), "clean": tfds.decode.SkipDecoding()}
  )
  out = {}
  for i in indices:
    value = source[i]["id"]
    out[i] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
  return out


def without_overlap(builder: tfds.core.DatasetBuilder, split: str, source):
  """``source`` (split ``split`` of ``builder``) without the examples whose clean image
  the build found in another split; returns (source, number left out, other splits).

  Raises ValueError if the build has no ``overlap.txt`` (built by an older version).
  """
  matches = overlap_report(builder)
  if matches is None:
    raise ValueError(
      f"config.data.drop_test_overlap=True: {builder.data_dir} has no {OVERLAP_REPORT} "
      "(built without overlap checks); delete that folder to build it again, or set "
      "--config.data.drop_test_overlap=False"
    )
  wanted = {}
  others = set()
  for m in matches:
    side = m.side(split)
    if side is not None:
      wanted[side[1]] = side[0]
      others.add(m.split_b if m.split_a == split else m.split_a)
  if not wanted:
    return source, 0, ()
  n = len(source)
  stored = _ids_at(builder, split, [i for i in wanted.values() if 0 <= i < n])
  if any(stored.get(i) != key for key, i in wanted.items()):
    # Positions predicted with another TFDS's ordering: find the ids by reading them all.
    logging.warning(
      "%s %s: the positions in %s do not match the stored examples; "
      "reading all %d ids to find them",
      builder.name,
      split,
      OVERLAP_REPORT,
      n,
    )
    by_id = {key: i for i, key in _ids_at(builder, split, range(n)).items()}
    missing = [key for key in wanted if key not in by_id]
    if missing:
      raise ValueError(
        f"{builder.data_dir}/{OVERLAP_REPORT} names {missing[0]!r}, which "
        f"is not in split {split!r}; delete that folder to build it again"
      )
    wanted = {key: by_id[key] for key in wanted}
  kept = np.setdiff1d(np.arange(n), np.fromiter(wanted.values(), np.int64))
  return Subset(source, kept), n - len(kept), tuple(sorted(others))
