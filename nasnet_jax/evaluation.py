"""Scoring deraining results: a model on a dataset split or a folder of photos, or saved
outputs in a folder.

Each gives one row per image: per protocol (see ``nasnet_jax.metrics``) the score of the
output beside that of the rainy input: PSNR/SSIM against the ground truth, and for real
rain without one, the no-reference NIQE/BRISQUE of each image alone.
``evaluation_report`` summarises and writes the rows.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from nasnet_jax import image_io, inference, metrics


def score_pair(
  pred: np.ndarray, gt: np.ndarray | None, protocols: Sequence[str], prefix: str = ""
) -> dict[str, float]:
  """The scores of uint8 (H, W, 3) ``pred``: {prefix + "psnr_<p>", prefix + "ssim_<p>"}
  against ``gt`` for each full-reference protocol p, {prefix + "<p>"} of ``pred`` alone
  for each no-reference one (niqe, brisque). ``gt`` may be None when all are no-reference."""
  full, no_reference = metrics.split_protocols(protocols)
  if full and gt is None:
    raise ValueError(
      f"protocol(s) {full} compare with a ground truth, which is missing here; without one, "
      f"score with {','.join(metrics.NO_REFERENCE_PROTOCOLS)}"
    )
  row = {}
  for p in full:
    row[f"{prefix}psnr_{p}"] = metrics.psnr(pred, gt, p)
    row[f"{prefix}ssim_{p}"] = metrics.ssim(pred, gt, p)
  for p in no_reference:
    row[f"{prefix}{p}"] = metrics.no_reference_score(pred, p)
  return row


def inference_options(eval_config: Mapping[str, Any]) -> dict[str, Any]:
  """``Derainer`` options from a ``config.eval`` (tile, overlap, ensemble, dtype)."""
  tile = int(eval_config.get("tile", 0) or 0)
  overlap = int(eval_config.get("overlap", -1))
  return {
    "tile": tile or None,
    "overlap": None if overlap < 0 else overlap,
    "ensemble": bool(eval_config.get("ensemble", False)),
    "dtype": eval_config.get("dtype", None) or None,
  }


def evaluate_model(
  model,
  params,
  examples: Iterable[Mapping[str, Any]],
  protocols: Sequence[str] = ("y8",),
  output_dir: str | None = None,
  on_image=None,
  options: Mapping[str, Any] | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> list[dict[str, Any]]:
  """Derains each example and scores it, the images split over devices and hosts.

  Image i is scored by process ``i % jax.process_count()``; within a process its images
  go to ``devices`` (default: its local devices), one thread each, every device holding
  its own copy of the parameters. The rows of all processes are then gathered, so every
  process returns every row, in the order of ``examples``: the same table as on one
  device. Every process must call it (it ends in a collective when there are several).

  Args:
    model, params: the network; ``params`` on the host, on a device, or replicated over
      devices (as the trainer holds them).
    examples: dicts with ``rainy`` and ``clean`` (uint8 HxWx3), ``id`` and optionally
      ``rain_type``; without ``clean`` (real rain, ``folder_examples``) only the
      no-reference protocols can score.
    protocols: scoring protocols (``metrics.PROTOCOLS``, ``metrics.NO_REFERENCE_PROTOCOLS``).
    output_dir: if given, each derained image is written there as ``<id>.png`` by the
      process that scored it.
    on_image: optional callback ``(index, example, derained_uint8)``, called (one at a
      time) on the process that scored that image.
    options: ``inference.Derainer`` options (tile, overlap, ensemble, dtype); see
      ``inference_options``. Whole images at the network's dtype by default.
    devices: this process's devices to use (default ``jax.local_devices()``).

  Returns:
    One row per image: id, rain_type (if any), and input_/output psnr/ssim per
    full-reference protocol, input_/output score per no-reference one.
  """
  metrics.split_protocols(protocols)  # unknown names fail before any image is derained
  devices = list(devices or jax.local_devices())
  host_params = jax.tree.map(_to_host, params)
  derainers = [
    inference.Derainer(
      model,
      jax.device_put(host_params, device),
      sharding=jax.sharding.SingleDeviceSharding(device),
      **(options or {}),
    )
    for device in devices
  ]
  process, processes = jax.process_index(), jax.process_count()
  mine = ((i, ex) for i, ex in enumerate(examples) if i % processes == process)
  lock = threading.Lock()

  def score(derainer, i, ex):
    derained = derainer(ex["rainy"])
    row = {"id": ex["id"]}
    if "rain_type" in ex:
      row["rain_type"] = ex["rain_type"]
    row.update(score_pair(ex["rainy"], ex.get("clean"), protocols, prefix="input_"))
    row.update(score_pair(derained, ex.get("clean"), protocols))
    if output_dir:
      image_io.write_png(os.path.join(output_dir, _safe_name(ex["id"]) + ".png"), derained)
    if on_image is not None:
      with lock:
        on_image(i, ex, derained)
    return i, row

  if len(derainers) == 1:
    indexed = [score(derainers[0], i, ex) for i, ex in mine]
  else:
    indexed = _on_threads(derainers, mine, score)
  if processes > 1:
    indexed = _gather_rows(indexed)
  return [row for _, row in sorted(indexed, key=lambda item: item[0])]


def _to_host(leaf):
  """A parameter as a host array: a replicated global array gives its local copy."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    leaf = leaf.addressable_data(0)
  return np.asarray(leaf)


def _on_threads(workers, items, fn) -> list:
  """``fn(worker, *item)`` for every item, each worker on its own thread taking the next
  item when free (at most two items waiting per worker, so images are read as needed)."""
  pending: queue.Queue = queue.Queue(maxsize=2 * len(workers))
  results, errors = [], []

  def work(worker):
    while (item := pending.get()) is not None:
      try:
        if not errors:
          results.append(fn(worker, *item))
      except BaseException as e:  # pylint: disable=broad-except
        errors.append(e)

  threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
  for t in threads:
    t.start()
  try:
    for item in items:
      if errors:
        break
      pending.put(item)
  finally:
    for _ in threads:
      pending.put(None)
    for t in threads:
      t.join()
  if errors:
    raise errors[0]
  return results


def _gather_rows(indexed: list) -> list:
  """Every process's (index, row) pairs, on every process (as JSON bytes through
  ``multihost_utils.process_allgather``, which needs no shared file system)."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  data = np.frombuffer(json.dumps(indexed).encode(), np.uint8)
  sizes = multihost_utils.process_allgather(np.array([data.size], np.int64))
  padded = np.zeros(int(np.max(sizes)), np.uint8)
  padded[: data.size] = data
  everything = multihost_utils.process_allgather(padded)
  rows = []
  for size, chunk in zip(np.asarray(sizes).reshape(-1), np.asarray(everything)):
    rows.extend((i, row) for i, row in json.loads(bytes(chunk[: int(size)]).decode()))
  return rows


def _safe_name(example_id: str) -> str:
  stem = os.path.splitext(example_id)[0]
  return stem.replace(os.sep, "__").replace("/", "__")


def _list_images(folder: str) -> tuple[dict[str, str], list[str]]:
  """{relative path without extension: path} of image files, and the non-image files."""
  found, others = {}, []
  for root, _, files in os.walk(folder):
    for name in sorted(files):
      path = os.path.join(root, name)
      rel = os.path.relpath(path, folder)
      if image_io.is_image_file(name):
        key = os.path.splitext(rel)[0]
        if key in found:
          raise ValueError(
            f"{folder} holds two images named {key} "
            f"({os.path.basename(found[key])}, {name}); keep one"
          )
        found[key] = path
      else:
        others.append(rel)
  return found, others


def folder_examples(folder: str) -> Iterator[dict[str, Any]]:
  """The images of ``folder`` (real rainy photos, no ground truth) as examples for
  ``evaluate_model``: {"id": path relative to the folder without extension, "rainy":
  uint8 (H, W, 3)}, in name order, each read when reached; non-image files are skipped
  with a note."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"{folder} is not a folder")
  images, skipped = _list_images(folder)
  if skipped:
    print(f"note: skipping {len(skipped)} non-image file(s) in {folder} (e.g. {skipped[0]})")
  if not images:
    raise ValueError(f"{folder} holds no images ({', '.join(image_io.IMAGE_EXTENSIONS)})")
  for key in sorted(images):
    yield {"id": key, "rainy": image_io.read_image(images[key])}


def evaluate_folders(
  results_dir: str,
  target_dir: str | None = None,
  protocols: Sequence[str] = ("y8",),
  input_dir: str | None = None,
) -> list[dict[str, Any]]:
  """Scores saved outputs in ``results_dir``, against ground truth in ``target_dir`` or,
  without one (real rain), with the no-reference protocols alone.

  Files are paired by their path relative to each folder, without the extension (so
  ``a/1.png`` pairs with ``a/1.jpg``). With ``target_dir``, every result must have a
  target of the same size and every target a result (a missing result would quietly score
  a subset). With ``input_dir`` (the rainy inputs, same names), the input's scores are
  reported too, and every result needs an input (without ``target_dir`` also every input
  a result; sizes may then differ, as some methods crop). Otherwise every such file is
  listed on stderr, then ValueError, before anything is written. Non-image files are
  skipped with a note. A full-reference protocol without ``target_dir`` is a ValueError.
  """
  for name, folder in (
    ("--results_dir", results_dir),
    ("--target_dir", target_dir),
    ("--input_dir", input_dir),
  ):
    if folder is not None and not os.path.isdir(folder):
      raise FileNotFoundError(f"{name}={folder} is not a folder")
  full, _ = metrics.split_protocols(protocols)
  if full and target_dir is None:
    raise ValueError(
      f"--protocols={','.join(full)} compare with ground truth: pass --target_dir=GT, or "
      f"score without one with --protocols={','.join(metrics.NO_REFERENCE_PROTOCOLS)}"
    )
  results, skipped = _list_images(results_dir)
  targets = _list_images(target_dir)[0] if target_dir else None
  inputs = _list_images(input_dir)[0] if input_dir else {}
  if skipped:
    print(
      f"note: skipping {len(skipped)} non-image file(s) in {results_dir} (e.g. {skipped[0]})",
      flush=True,
    )
  if not results:
    raise ValueError(
      f"--results_dir={results_dir} holds no images ({', '.join(image_io.IMAGE_EXTENSIONS)})"
    )
  problems = []
  if targets is not None:
    problems += [
      (results[k], f"no ground truth {k}.* in {target_dir}")
      for k in sorted(set(results) - set(targets))
    ]
    problems += [
      (targets[k], f"no result {k}.* in {results_dir}") for k in sorted(set(targets) - set(results))
    ]
  if input_dir:
    problems += [
      (results[k], f"no input {k}.* in {input_dir}") for k in sorted(set(results) - set(inputs))
    ]
    if targets is None:
      problems += [
        (inputs[k], f"no result {k}.* in {results_dir}") for k in sorted(set(inputs) - set(results))
      ]
  rows = []
  for key in sorted(results):
    if targets is not None and key not in targets:
      continue
    pred = image_io.read_image(results[key])
    gt = None
    if targets is not None:
      gt = image_io.read_image(targets[key])
      if pred.shape != gt.shape:
        problems.append((results[key], _size_mismatch(pred, targets[key], gt)))
        continue
    row = {"id": key}
    if input_dir and key in inputs:
      rainy = image_io.read_image(inputs[key])
      if gt is not None and rainy.shape != gt.shape:
        problems.append((inputs[key], _size_mismatch(rainy, targets[key], gt)))
        continue
      row.update(score_pair(rainy, gt, protocols, prefix="input_"))
    row.update(score_pair(pred, gt, protocols))
    rows.append(row)
  if problems:
    for path, reason in problems:
      print(f"  {path}: {reason}", file=sys.stderr, flush=True)
    if targets is not None:
      rule = (
        f"every result needs a ground truth{' and an input' if input_dir else ''} of the "
        "same name and size, and every ground truth a result"
      )
    else:
      rule = "every result needs an input of the same name, and every input a result"
    raise ValueError(
      f"{len(problems)} file(s) cannot be scored (listed above): {rule}; nothing was written"
    )
  return rows


def _size_mismatch(image: np.ndarray, other_path: str, other: np.ndarray) -> str:
  return (
    f"is {image.shape[1]}x{image.shape[0]} but {other_path} is {other.shape[1]}x{other.shape[0]}"
  )
