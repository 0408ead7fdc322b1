"""Input pipeline: TFDS data sources read with grain.

Training batches come from a ``grain.MapDataset``: a seeded global shuffle reshuffled
every epoch, random crops with the same horizontal flip and rot90 applied to rainy and
clean, a per-host slice for multi-host runs, and batching to the per-host share of the
global batch. Every element is a pure function of (seed, index), so the iterator's state
is one integer, saved in each checkpoint: a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from nasnet_jax import hosts

# Importing registers the builders with TFDS.
from nasnet_jax.data import (
  builders,  # noqa: F401
  overlap,
  shard_check,
  synthetic_rain_builder,  # noqa: F401
)


def get_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The TFDS builder for ``name`` ("rain100h", "mpid/drop", "paired_folders/rain13k"...).

  ``paired_folders/<label>`` takes any label: each label is its own build.
  """
  base, _, label = name.partition("/")
  try:
    if base == "paired_folders":
      config = builders.PairedFoldersConfig(name=label or "default")
      return tfds.builder(base, config=config, data_dir=data_dir, file_format="array_record")
    return tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(
      f"config.data.name={name!r} is not a registered dataset; use one of "
      f"{', '.join(('synthetic_rain/mixed',) + builders.BUILDERS)}"
    ) from e
  except ValueError as e:  # e.g. an unknown config such as "mpid/fog"
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"config.data.name={name!r}: {first}") from e


def prepare(
  name: str, data_dir: str | None = None, manual_dir: str | None = None
) -> tfds.core.DatasetBuilder:
  """The builder of TFDS dataset ``name``, built into ``data_dir`` first if it is not.

  On several hosts, host 0 alone builds; every host then meets at a barrier (all of them,
  whatever each thinks of ``is_prepared()``, so none waits for ever), learns whether host
  0 succeeded, and re-creates its builder, which must now see the data: a ``data_dir``
  that is not shared between the hosts is a one-line error on every host.
  """
  builder = get_builder(name, data_dir)
  if jax.process_count() == 1:
    if not builder.is_prepared():
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
      )
    return builder
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  failure = None
  if jax.process_index() == 0 and not builder.is_prepared():
    try:
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
      )
    except Exception as e:  # pylint: disable=broad-except
      failure = e  # raised after the barrier, so the other hosts do not wait for ever
  multihost_utils.sync_global_devices(f"prepare {name}")
  host0_ok = bool(multihost_utils.broadcast_one_to_all(np.int32(failure is None)))
  if failure is not None:
    raise failure
  if not host0_ok:
    raise ValueError(
      f"host 0 failed to build {name!r} (its own error says why); fix it and rerun on every host"
    )
  builder = get_builder(name, data_dir)
  sees = np.asarray(
    multihost_utils.process_allgather(np.array([builder.is_prepared()], np.int32))
  ).reshape(-1)
  if not sees.all():  # every host stops, not only those that cannot see it
    blind = ", ".join(str(i) for i in np.flatnonzero(sees == 0))
    raise FileNotFoundError(
      f"host(s) {blind} do not see {name!r}, which host 0 built (this host looked in "
      f"{data_dir or 'the default TFDS data_dir'}): pass a --config.data.data_dir that "
      "every host reads from the same shared file system"
    )
  return builder


def get_data_source(
  name: str,
  split: str,
  data_dir: str | None = None,
  manual_dir: str | None = None,
  drop_test_overlap: bool = False,
):
  """A random-access source over ``split`` of TFDS dataset ``name`` (e.g. "synthetic_rain/mixed").

  Builds the dataset into ``data_dir`` (array_record format) on first use, reading the
  extracted archive from ``manual_dir`` for the public benchmarks; with several hosts,
  host 0 builds and the others wait. Examples are dicts of numpy arrays with at least
  ``rainy``, ``clean`` (uint8 HxWx3) and ``id``. With ``drop_test_overlap`` the examples
  whose clean image the build found in another split (``overlap.txt``) are left out.
  """
  builder = prepare(name, data_dir, manual_dir)
  if split not in builder.info.splits:
    raise ValueError(
      f"dataset {name!r} has no split {split!r}; it has {sorted(builder.info.splits)}"
    )
  hosts.check_on_every_host(  # a damaged shard: one line naming it, on every host
    lambda: shard_check.check_shards(builder, name, split), f"reading {name}"
  )
  source = shard_check.NamedReadErrors(builder.as_data_source(split=split), builder, name, split)
  if drop_test_overlap:
    total = len(source)
    source, dropped, others = overlap.without_overlap(builder, split, source)
    if dropped:
      logging.warning(
        "%s %s: left out %d of %d examples whose clean image is also in %s "
        "(config.data.drop_test_overlap)",
        name,
        split,
        dropped,
        total,
        ", ".join(others),
      )
  return source


def as_text(value: Any) -> str:
  """TFDS text features arrive as bytes from a data source."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclasses.dataclass(frozen=True)
class RandomCropFlipRotate(grain.transforms.RandomMap):
  """The same random crop, horizontal flip and rot90 for ``rainy`` and ``clean``.

  Input: a dict with uint8 ``rainy`` and ``clean`` of equal (H, W, 3). Output: a dict with
  the two (crop_size, crop_size, 3) uint8 crops. With ``scale_range=(lo, hi)`` the crop
  is a square of side ``crop_size * s`` (s log-uniform in [lo, hi], at most the image's
  short side) resized to ``crop_size`` (Pillow bilinear, antialiased when shrinking):
  objects appear at other sizes. Images smaller than the crop are reflect-padded to it if
  ``pad_small_images`` (said once, as a warning), else an error.
  """

  crop_size: int
  flip: bool = True
  rotate: bool = True
  pad_small_images: bool = False
  scale_range: tuple[float, float] = (1.0, 1.0)
  _warned: threading.Event = dataclasses.field(
    default_factory=threading.Event, compare=False, repr=False
  )

  def random_map(self, element, rng: np.random.Generator):
    rainy, clean = element["rainy"], element["clean"]
    name = as_text(element.get("id", "?"))
    if rainy.shape != clean.shape:
      raise ValueError(
        f"example {name}: rainy {rainy.shape} and clean {clean.shape} differ in size"
      )
    h, w = rainy.shape[:2]
    c = self.crop_size
    if h < c or w < c:
      if not self.pad_small_images:
        raise ValueError(
          f"config.data.crop_size={c} is larger than example {name} ({h}x{w}); "
          f"use --config.data.crop_size<={min(h, w)} or "
          "--config.data.pad_small_images=True"
        )
      if not self._warned.is_set():
        self._warned.set()
        logging.warning(
          "example %s (%dx%d) is smaller than config.data.crop_size=%d: reflect-padding "
          "it and any other small image (--config.data.pad_small_images=False makes "
          "this an error)",
          name,
          h,
          w,
          c,
        )
      pads = ((0, max(0, c - h)), (0, max(0, c - w)), (0, 0))
      rainy, clean = np.pad(rainy, pads, "reflect"), np.pad(clean, pads, "reflect")
      h, w = rainy.shape[:2]
    side = c
    lo, hi = self.scale_range
    if (lo, hi) != (1.0, 1.0):
      side = int(round(c * np.exp(rng.uniform(np.log(lo), np.log(hi)))))
      side = max(1, min(side, h, w))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    rainy = rainy[top : top + side, left : left + side]
    clean = clean[top : top + side, left : left + side]
    if side != c:
      resize = lambda x: np.asarray(Image.fromarray(x).resize((c, c), Image.Resampling.BILINEAR))
      rainy, clean = resize(rainy), resize(clean)
    if self.flip and rng.integers(2):
      rainy, clean = rainy[:, ::-1], clean[:, ::-1]
    if self.rotate:
      k = int(rng.integers(4))
      rainy, clean = np.rot90(rainy, k), np.rot90(clean, k)
    return {"rainy": np.ascontiguousarray(rainy), "clean": np.ascontiguousarray(clean)}


@dataclasses.dataclass(frozen=True)
class Mixture:
  """Several random-access sources drawn with relative ``weights`` (default equal)."""

  sources: Sequence[Any]
  weights: Sequence[float] | None = None

  def __post_init__(self):
    if not self.sources:
      raise ValueError("a mixture needs at least one source")
    w = self.weights
    if w is not None and (
      len(w) != len(self.sources) or any(not x >= 0 for x in w) or not sum(w) > 0
    ):
      raise ValueError(
        f"mixture weights {list(w)} must be {len(self.sources)} numbers >= 0 with a positive sum"
      )


def train_dataset(
  source,
  *,
  crop_size: int,
  global_batch_size: int,
  seed: int,
  flip: bool = True,
  rotate: bool = True,
  pad_small_images: bool = False,
  scale_range: tuple[float, float] = (1.0, 1.0),
  process_index: int | None = None,
  process_count: int | None = None,
) -> grain.MapDataset:
  """An endless MapDataset of this host's training batches.

  ``source`` is a random-access source (``len`` and ``[i]``) or a ``Mixture`` of them,
  each globally shuffled with its own seed and repeated. Element i is a dict with
  ``rainy`` and ``clean`` uint8 arrays of shape
  (global_batch_size // process_count, crop_size, crop_size, 3), a pure function of
  (seed, i): host p's rows p*n .. (p+1)*n - 1 (n = global_batch_size // process_count) of
  global batch i. Concatenated in host order, the hosts' batches are the one-host batch
  row for row, so every per-row draw of the train step (on-device rain, augmentation) is
  the same whatever the number of hosts.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size % process_count:
    raise ValueError(
      f"config.batch_size={global_batch_size} does not divide over {process_count} hosts"
    )
  mixture = source if isinstance(source, Mixture) else Mixture([source])
  parts = []
  for i, src in enumerate(mixture.sources):
    if len(src) == 0:
      raise ValueError(
        "the training split is empty"
        if len(mixture.sources) == 1
        else f"the training split of mixture entry {i} is empty"
      )
    parts.append(grain.MapDataset.source(src).seed(seed + 7919 * i).shuffle().repeat())
  if len(parts) == 1:
    ds = parts[0]
  else:
    weights = [float(w) for w in mixture.weights] if mixture.weights else None
    ds = grain.MapDataset.mix(parts, weights).seed(seed)
  lo, hi = (float(x) for x in scale_range)
  if not 0 < lo <= hi:
    raise ValueError(
      f"config.data.scale_range={tuple(scale_range)} must be (lo, hi) with "
      "0 < lo <= hi, e.g. (0.5, 2.0)"
    )
  ds = ds.random_map(RandomCropFlipRotate(crop_size, flip, rotate, pad_small_images, (lo, hi)))
  # Consecutive chunks of n crops; global batch i is chunks i*P .. i*P + P - 1 in order.
  ds = ds.batch(global_batch_size // process_count, drop_remainder=True)
  return ds[process_index::process_count]


def train_iterator(
  dataset: grain.MapDataset,
  num_threads: int = 2,
  prefetch: int = 4,
  place: Callable[[Any], Any] | None = None,
  device_prefetch: int = 2,
) -> grain.DatasetIterator:
  """A checkpointable iterator over ``dataset``'s batches, read ``prefetch`` batches ahead
  on ``num_threads`` grain threads.

  With ``place`` (a host batch -> arrays on the devices, e.g. ``Training.place_batch``),
  each batch is placed on the devices in a grain thread and ``device_prefetch`` placed
  batches are kept ahead of the step (``grain.experimental.ThreadPrefetchIterDataset``).
  This is what ``grain.experimental.device_put`` builds, with a placement of our own:
  ``jax.device_put`` of one host's share onto a global sharding is wrong on several hosts,
  ``jax.make_array_from_process_local_data`` is right.

  ``get_state()`` after ``next()`` is the state right after that batch, however many are
  prefetched: checkpoint it once the step that consumed the batch is done, and
  ``set_state`` resumes with the next batch exactly (the prefetched ones are produced
  again). Call ``close()`` when done, to stop the threads.
  """
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  ds = dataset.to_iter_dataset(options)
  if place is not None:
    ds = grain.experimental.ThreadPrefetchIterDataset(
      ds.map(place), prefetch_buffer_size=max(1, device_prefetch)
    )
  return iter(ds)


def eval_examples(source, max_examples: int | None = None) -> Iterator[dict[str, Any]]:
  """Whole evaluation examples in order, ids as str; at most ``max_examples``."""
  n = len(source) if not max_examples else min(len(source), max_examples)
  for i in range(n):
    example = dict(source[i])
    example["id"] = as_text(example["id"])
    for key in ("rain_type",):
      if key in example:
        example[key] = as_text(example[key])
    yield example
