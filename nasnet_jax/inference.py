"""Inference on images of any size: shape buckets, tiles, the x8 self-ensemble, bfloat16.

    derainer = Derainer(model, params, tile=512, ensemble=True)
    derained = derainer(rainy)          # (H, W, 3) or (N, H, W, 3), uint8/uint16/float

**Whole image.** The input is zero-padded at the bottom and right to a shape bucket (see
``bucket_size``: at most 1/8 larger, so a folder of photos of many sizes compiles a few
shapes, not one per size) and the network gets a mask of the image pixels. NASNet zeroes
its activations outside the mask, so the output equals running it on the unpadded image
exactly as the authors' PyTorch code does (``"same"`` zero padding at the image border),
which keeps scores comparable with the papers.

**Tiles** (``tile``: the core size in pixels; ``overlap``: extra context on each side).
Each tile is run with its overlap and masked like a padded image, so a tile at the image
border sees the border as the whole-image run does. NASNet has no global pooling: an
output pixel depends on the input within ``model.receptive_field_radius`` pixels (170 for
the paper's default), so with ``overlap`` at least that radius each tile's core equals the
whole-image output (float rounding aside) and the cores are pasted. With a smaller overlap
(or a network that is not local) neighbouring tiles are cross-faded linearly over the
``2 * overlap`` pixels around their shared edge. ``overlap`` defaults to the radius.

**Self-ensemble** (``ensemble=True``): the mean over the 8 flips x rotations by 90 degrees,
each undone before averaging (8x the compute). Every pass is clipped to [0, 1] before it
is averaged or blended.

**bfloat16** (``dtype="bfloat16"``): the network computes in bfloat16 with float32
parameters; the output is float32.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nasnet_jax.models import convolution

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def bucket_size(n: int, min_multiple: int = 16) -> int:
  """``n`` rounded up to a multiple of max(min_multiple, 2**floor(log2 n) / 8).

  Sizes 256-511 round to multiples of 32, 2048-4095 to multiples of 256: eight buckets
  per octave, each at most 12.5% larger than what it holds.
  """
  if n < 1:
    raise ValueError(f"image sides must be >= 1 pixel, got {n}")
  step = max(min_multiple, (1 << (n.bit_length() - 1)) // 8)
  return -(-n // step) * step


def _apply_model(model: nn.Module, params, images: jax.Array, valid: jax.Array) -> jax.Array:
  """The network's output clipped to [0, 1]: every pass is an image, so the ensemble
  averages and the tiles blend images (as the exported ONNX and jax.export networks,
  which clip, give them)."""
  return jnp.clip(model.apply({"params": params}, images, valid), 0.0, 1.0)


@functools.cache
def _jit(options: tuple[tuple[str, str], ...]):
  return jax.jit(_apply_model, static_argnames=("model",), compiler_options=dict(options) or None)


def jitted_apply(model: nn.Module):
  """``(model, params, images, valid) -> output`` in [0, 1], jitted with the compiler
  options for ``model`` (``convolution.compiler_options``); one compiled program per model
  and input shape."""
  return _jit(tuple(sorted((convolution.compiler_options(model) or {}).items())))


def tile_windows(h: int, w: int, tile: int, overlap: int) -> list[tuple[tuple, tuple]]:
  """The tiles of an h x w image, row by row: (core, window) boxes ``(y0, y1, x0, x1)``.

  Cores are ``tile`` x ``tile`` (smaller at the bottom and right edges) and cover the
  image once; each window is its core grown by ``overlap`` on every side, clipped to the
  image.
  """
  return [
    (
      (y0, min(y0 + tile, h), x0, min(x0 + tile, w)),
      (
        max(y0 - overlap, 0),
        min(y0 + tile + overlap, h),
        max(x0 - overlap, 0),
        min(x0 + tile + overlap, w),
      ),
    )
    for y0 in range(0, h, tile)
    for x0 in range(0, w, tile)
  ]


def _to_float(array: np.ndarray) -> np.ndarray:
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  if array.dtype == np.uint16:
    return array.astype(np.float32) / 65535.0
  return array.astype(np.float32)


def _from_float(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
  array = np.clip(array, 0.0, 1.0)
  if dtype == np.uint8:
    return np.round(array * 255.0).astype(np.uint8)
  if dtype == np.uint16:
    return np.round(array * 65535.0).astype(np.uint16)
  return array.astype(np.float32)


def _ramp(
  start: int, stop: int, core_start: int, core_stop: int, size: int, overlap: int
) -> np.ndarray:
  """1-D cross-fade weights over the window [start, stop) of a tile with core
  [core_start, core_stop): linear over 2*overlap pixels around each inner core edge."""
  pos = np.arange(start, stop, dtype=np.float32) + 0.5
  w = np.ones(stop - start, np.float32)
  if overlap > 0 and core_start > 0:
    w = np.minimum(w, np.clip((pos - (core_start - overlap)) / (2 * overlap), 0, 1))
  if overlap > 0 and core_stop < size:
    w = np.minimum(w, np.clip(((core_stop + overlap) - pos) / (2 * overlap), 0, 1))
  return w


def use_compilation_cache(directory: str) -> None:
  """Keeps every compiled program of this process in ``directory`` (JAX's persistent
  compilation cache), however short its compilation: inference compiles one program per
  image-size bucket, and a later process that meets the same bucket loads it instead of
  compiling it again. Call before the first computation."""
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class Derainer:
  """A network and its parameters, ready to derain images of any size.

  Args:
    model: a deraining network taking ``(images, valid)`` (e.g. ``NASNet``).
    params: its parameters.
    tile: core size of a tile in pixels; None runs the whole image at once.
    overlap: context each tile gets on every side; None: the network's receptive-field
      radius (exact tiling), or 32 for a network that is not local.
    ensemble: average the 8 flip/rot90 versions.
    dtype: "float32" or "bfloat16" computation (None keeps the model's).
    sharding: optional placement for the input batch (the trainer passes its replicated
      sharding).
    tile_batch: tiles run together in one call.
  """

  def __init__(
    self,
    model: nn.Module,
    params: Any,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    dtype: str | None = None,
    sharding=None,
    tile_batch: int = 1,
  ):
    if dtype is not None:
      if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of {sorted(_DTYPES)}")
      model = model.clone(dtype=_DTYPES[dtype])
    self.radius = model.receptive_field_radius  # models.network.DerainingNetwork
    self._set_tiling(tile, overlap, ensemble, tile_batch)
    self.model, self.params = model, params
    self._apply = jitted_apply(model)
    self.sharding = sharding

  def _set_tiling(
    self, tile: int | None, overlap: int | None, ensemble: bool, tile_batch: int
  ) -> None:
    """Checks and sets the tiling options (after ``self.radius``)."""
    if tile is not None and tile < 1:
      raise ValueError(f"tile={tile} must be a positive number of pixels (or None)")
    if overlap is None:
      overlap = self.radius if self.radius is not None else 32
    if overlap < 0:
      raise ValueError(f"overlap={overlap} must be >= 0")
    if tile_batch < 1:
      raise ValueError(f"tile_batch={tile_batch} must be >= 1")
    self.tile, self.overlap, self.ensemble, self.tile_batch = tile, overlap, ensemble, tile_batch

  @property
  def tiles_are_exact(self) -> bool:
    """Whether tiled output equals whole-image output (overlap >= receptive field)."""
    return self.radius is not None and self.overlap >= self.radius

  def __call__(self, image) -> np.ndarray:
    """(H, W, 3) or (N, H, W, 3) RGB, uint8, uint16 or float in [0, 1] -> the derained
    image(s), same shape and dtype (float output as float32 in [0, 1])."""
    array = np.asarray(image)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
      raise ValueError(
        f"expected an RGB image (H, W, 3) or batch (N, H, W, 3), got shape {array.shape}"
      )
    batch = _to_float(array[None] if array.ndim == 3 else array)
    if self.ensemble:
      out = np.zeros_like(batch)
      for k in range(4):
        for flip in (False, True):
          x = batch[:, :, ::-1] if flip else batch
          y = np.rot90(self._forward(np.rot90(x, k, axes=(1, 2))), -k, axes=(1, 2))
          out += y[:, :, ::-1] if flip else y
      out /= 8.0
    else:
      out = self._forward(batch)
    out = _from_float(out, array.dtype)
    return out[0] if array.ndim == 3 else out

  def _run(self, images: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if self.sharding is not None:
      images, valid = jax.device_put((images, valid), self.sharding)
    return np.asarray(self._apply(self.model, self.params, images, valid))

  def _forward(self, batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float32 -> (N, H, W, 3) float32 in [0, 1]."""
    n, h, w, _ = batch.shape
    if self.tile is None or (h <= self.tile and w <= self.tile):
      return self._whole(batch)
    return np.stack([self._tiled(image) for image in batch])

  def _whole(self, batch: np.ndarray) -> np.ndarray:
    n, h, w, c = batch.shape
    bh, bw = bucket_size(h), bucket_size(w)
    padded = np.zeros((n, bh, bw, c), np.float32)
    padded[:, :h, :w] = batch
    valid = np.zeros((n, bh, bw, 1), np.float32)
    valid[:, :h, :w] = 1.0
    return self._run(padded, valid)[:, :h, :w]

  def _tiled(self, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 3) from tiles of one buffer shape, run tile_batch at a time."""
    h, w, c = image.shape
    t, o = self.tile, self.overlap
    buf_h, buf_w = min(t + 2 * o, bucket_size(h)), min(t + 2 * o, bucket_size(w))
    windows = tile_windows(h, w, t, o)
    exact = self.tiles_are_exact
    out = np.zeros((h, w, c), np.float32)
    weight = None if exact else np.zeros((h, w, 1), np.float32)
    for first in range(0, len(windows), self.tile_batch):
      group = windows[first : first + self.tile_batch]
      tiles = np.zeros((self.tile_batch, buf_h, buf_w, c), np.float32)
      valid = np.zeros((self.tile_batch, buf_h, buf_w, 1), np.float32)
      for i, (_, (wy0, wy1, wx0, wx1)) in enumerate(group):
        tiles[i, : wy1 - wy0, : wx1 - wx0] = image[wy0:wy1, wx0:wx1]
        valid[i, : wy1 - wy0, : wx1 - wx0] = 1.0
      results = self._run(tiles, valid)
      for result, ((cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1)) in zip(results, group):
        if exact:
          out[cy0:cy1, cx0:cx1] = result[cy0 - wy0 : cy1 - wy0, cx0 - wx0 : cx1 - wx0]
        else:
          wgt = (
            _ramp(wy0, wy1, cy0, cy1, h, o)[:, None] * _ramp(wx0, wx1, cx0, cx1, w, o)[None, :]
          )[..., None]
          out[wy0:wy1, wx0:wx1] += wgt * result[: wy1 - wy0, : wx1 - wx0]
          weight[wy0:wy1, wx0:wx1] += wgt
    return out if exact else out / np.maximum(weight, 1e-12)


class OnnxDerainer(Derainer):
  """``Derainer`` on an ONNX file (``python -m nasnet_jax.export --format=onnx``) run by
  ONNX Runtime: the same tiles, ensemble and image types, no JAX computation.

  The ONNX network takes the image alone (no mask), so every image and tile runs at its
  own size; for NASNet that is exactly what the mask gives (``OnnxDerainer`` and
  ``Derainer`` agree to float rounding). Sessions run on the CPU with ONNX Runtime's
  default threads unless ``providers``/``threads`` say otherwise.

  Args:
    path: the ``.onnx`` file.
    tile, overlap, ensemble, tile_batch: as for ``Derainer``; ``overlap`` defaults to the
      receptive-field radius recorded in the file.
    providers: ONNX Runtime execution providers (default: CPU).
    threads: intra-op threads (None: ONNX Runtime's default, one per core).
  """

  def __init__(
    self,
    path: str,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    tile_batch: int = 1,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    threads: int | None = None,
  ):
    from nasnet_jax import export, extras  # pylint: disable=g-import-not-at-top

    ort = extras.require("onnxruntime", "onnx", "--backend=onnxruntime")
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f"{path} is not a file: pass the .onnx file written by "
        "python -m nasnet_jax.export --format=onnx"
      )
    options = ort.SessionOptions()
    if threads:
      options.intra_op_num_threads = threads
    try:
      self.session = ort.InferenceSession(path, options, providers=list(providers))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(
        f"{path} is not an ONNX model ONNX Runtime can load: "
        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
      ) from e
    meta = self.session.get_modelmeta().custom_metadata_map
    inputs = [i.name for i in self.session.get_inputs()]
    if inputs != [export.ONNX_INPUT]:
      raise ValueError(
        f"{path} takes inputs {inputs}, not a nasnet_jax export's ['{export.ONNX_INPUT}']"
      )
    self.input_name = export.ONNX_INPUT
    radius = meta.get(export.ONNX_RADIUS_KEY, "")
    self.radius = int(radius) if radius else None
    self.model_config = json.loads(meta.get(export.ONNX_MODEL_KEY, "{}"))
    self._set_tiling(tile, overlap, ensemble, tile_batch)
    self.model, self.params, self.sharding = None, None, None

  def _onnx(self, images: np.ndarray) -> np.ndarray:
    return self.session.run(None, {self.input_name: np.ascontiguousarray(images, np.float32)})[0]

  def _whole(self, batch: np.ndarray) -> np.ndarray:
    return self._onnx(batch)

  def _run(self, images: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each image of the batch on its valid rectangle alone (the top-left corner)."""
    out = np.zeros_like(images)
    for i in range(images.shape[0]):
      h, w = int(valid[i, :, 0, 0].sum()), int(valid[i, 0, :, 0].sum())
      if h and w:
        out[i, :h, :w] = self._onnx(images[i : i + 1, :h, :w])[0]
    return out


def derain(model: nn.Module, params: Any, image, **options) -> np.ndarray:
  """Derains one image (H, W, 3) or a batch (N, H, W, 3) of any height and width.

  ``image`` is RGB, uint8, uint16 or float in [0, 1]; the result has its shape and dtype.
  ``options`` are ``Derainer``'s: tile, overlap, ensemble, dtype, sharding, tile_batch.
  """
  return Derainer(model, params, **options)(image)
