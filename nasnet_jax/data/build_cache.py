"""The resumable first stage of a benchmark build: checking and converting the image pairs.

A TFDS build cannot resume: killed, it starts over. For the public benchmarks most of a
build is reading, checking and converting the images (SPA-Data alone has 638,492 pairs),
so the builders do that first, in chunks of ``CHUNK_SIZE`` pairs on a few threads, and
save each chunk atomically (temporary file, then rename) to a cache folder under the TFDS
download dir. Run again after a kill, a build reuses every finished chunk and redoes only
those that were in flight. TFDS then writes its ``array_record`` files from the cache,
which needs no decoding or encoding, and the cache is removed.

For each pair a chunk holds what the dataset stores, or why the pair is skipped:

* an 8-bit RGB PNG is checked by decoding it and then stored as the file's own bytes; the
  chunk keeps its path, size and modification time, and a file changed since is converted
  again when the dataset is written;
* anything else (16-bit, grayscale, palette, RGBA, JPEG, TIFF, WebP, ...) is decoded to
  uint8 RGB (``nasnet_jax.image_io.to_rgb_uint8``) and re-encoded as PNG into the chunk;
* an unreadable file or a size mismatch becomes a skip reason for ``skipped.txt``;
* the clean image's fingerprint (``nasnet_jax.data.overlap.fingerprint``) for the
  train/test overlap check.

Chunks are msgpack streams (msgpack ships with flax): one map per pair, read back one at a
time, so a chunk of large images never sits in memory whole.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
from collections.abc import Iterator, Sequence

import msgpack
import numpy as np
from PIL import Image

from nasnet_jax import image_io
from nasnet_jax.data import layouts, overlap

# Pairs per chunk: a kill loses at most this many conversions per thread.
CHUNK_SIZE = 64
# Changes whenever what a chunk holds changes, so old caches are not reused.
CHUNK_FORMAT = 2
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def default_num_threads() -> int:
  """Conversion threads: PIL decodes and encodes with the GIL released."""
  return max(1, min(8, os.cpu_count() or 1))


def _stat(path: str) -> list[int] | None:
  try:
    st = os.stat(path)
  except OSError:
    return None
  return [st.st_size, st.st_mtime_ns]


def is_stored_as_is(data: bytes) -> bool:
  """Whether encoded ``data`` is a PNG that decodes to uint8 RGB everywhere: 8-bit
  truecolor without a transparent colour key (tRNS), which decoders could turn into alpha."""
  if not (data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) > 26):
    return False
  if data[24] != 8 or data[25] != 2:
    return False
  idat = data.find(b"IDAT")
  return b"tRNS" not in data[: idat if idat >= 0 else len(data)]


def _encode_png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _read(path: str) -> tuple[dict, np.ndarray]:
  """(what to store for ``path``, its decoded uint8 RGB image); raises ImageReadError."""
  stat = _stat(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise image_io.ImageReadError(
      f"{path}: cannot be read ({e.strerror or type(e).__name__})"
    ) from e
  image = image_io.decode_image(data, path)
  if is_stored_as_is(data):
    return {"path": path, "stat": stat}, image
  return {"png": _encode_png(image)}, image


def convert_pair(pair: layouts.Pair) -> dict:
  """Checks and converts one pair: {"id", "rainy", "clean", "clean_fingerprint"} or
  {"id", "skipped": reason}.

  ``rainy``/``clean`` are {"png": bytes} or, for a file stored as is, {"path", "stat"};
  ``clean_fingerprint`` is ``overlap.fingerprint`` of the clean image.
  """
  try:
    rainy, rainy_image = _read(pair.rainy)
    clean, clean_image = _read(pair.clean)
  except image_io.ImageReadError as e:
    return {"id": pair.id, "skipped": str(e)}
  rainy_shape, clean_shape = rainy_image.shape, clean_image.shape
  if rainy_shape != clean_shape:
    return {
      "id": pair.id,
      "skipped": (
        f"size {rainy_shape[1]}x{rainy_shape[0]} differs from its clean partner's "
        f"{clean_shape[1]}x{clean_shape[0]} ({os.path.basename(pair.clean)})"
      ),
    }
  return {
    "id": pair.id,
    "rainy": rainy,
    "clean": clean,
    "clean_fingerprint": list(overlap.fingerprint(clean_image)),
  }


def _chunk_name(split: str, index: int, pairs: Sequence[layouts.Pair]) -> str:
  """File name of a chunk: changes when its pairs, their files or the format change."""
  digest = hashlib.sha256(repr((CHUNK_FORMAT, split)).encode())
  for p in pairs:
    digest.update(repr((p.id, p.rainy, p.clean, _stat(p.rainy), _stat(p.clean))).encode())
  return f"{split}-{index:06d}-{digest.hexdigest()[:20]}.msgpack"


def _ensure_chunk(cache_dir: str, split: str, index: int, pairs: Sequence[layouts.Pair]) -> str:
  """Path of the chunk file for ``pairs``, converting them first unless it exists."""
  path = os.path.join(cache_dir, _chunk_name(split, index, pairs))
  if os.path.exists(path):
    return path
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    for pair in pairs:
      f.write(msgpack.packb(convert_pair(pair), use_bin_type=True))
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  return path


def _stored_bytes(entry: dict) -> bytes | None:
  """The PNG bytes to store; None if a file stored as is has changed since its check."""
  if "png" in entry:
    return entry["png"]
  if _stat(entry["path"]) != entry["stat"]:
    return None
  try:
    with open(entry["path"], "rb") as f:
      return f.read()
  except OSError:
    return None


def _example(record: dict, pair: layouts.Pair, recheck: bool = True) -> dict:
  """A chunk record as {"id", "rainy", "clean", "clean_fingerprint"} with PNG bytes, or
  {"id", "skipped"}."""
  if "skipped" in record:
    return record
  rainy, clean = _stored_bytes(record["rainy"]), _stored_bytes(record["clean"])
  if rainy is None or clean is None:
    if recheck:  # changed since the chunk was made: check and convert it again
      return _example(convert_pair(pair), pair, recheck=False)
    return {
      "id": pair.id,
      "skipped": f"{pair.rainy} or its clean partner changed while "
      "the dataset was being built; build again",
    }
  return {
    "id": record["id"],
    "rainy": rainy,
    "clean": clean,
    "clean_fingerprint": tuple(record["clean_fingerprint"]),
  }


def converted_pairs(
  pairs: Sequence[layouts.Pair],
  split: str,
  cache_dir: str,
  num_threads: int | None = None,
  chunk_size: int | None = None,
) -> Iterator[dict]:
  """Yields, in the order of ``pairs``, {"id", "rainy", "clean", "clean_fingerprint"} with
  PNG bytes, or {"id", "skipped": reason}; converted chunks are kept in ``cache_dir`` for a
  rerun."""
  chunk_size = chunk_size or CHUNK_SIZE
  os.makedirs(cache_dir, exist_ok=True)
  chunks = [pairs[i : i + chunk_size] for i in range(0, len(pairs), chunk_size)]
  executor = concurrent.futures.ThreadPoolExecutor(
    num_threads or default_num_threads(), thread_name_prefix="convert"
  )
  try:
    futures = [
      executor.submit(_ensure_chunk, cache_dir, split, i, chunk) for i, chunk in enumerate(chunks)
    ]
    for future, chunk in zip(futures, chunks):
      by_id = {p.id: p for p in chunk}
      with open(future.result(), "rb") as f:
        for record in msgpack.Unpacker(f, raw=False, max_buffer_size=2**31 - 1):
          yield _example(record, by_id[record["id"]])
  finally:
    executor.shutdown(wait=True, cancel_futures=True)
