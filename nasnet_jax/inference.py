"""Whole-image inference for images of any size."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("model",))
def _apply(model: nn.Module, params, images: jax.Array) -> jax.Array:
  return jnp.clip(model.apply({"params": params}, images), 0.0, 1.0)


def pad_to_multiple(images: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
  """Reflect-pads (N, H, W, C) at the bottom/right to multiples of ``multiple``.

  Returns the padded array and the original (H, W). Padding to a bucket keeps the number
  of compiled shapes small (one per bucket, not one per image size).
  """
  h, w = images.shape[1:3]
  ph, pw = (-h) % multiple, (-w) % multiple
  if ph or pw:
    mode = "reflect" if (ph < h and pw < w) else "symmetric"
    images = np.pad(images, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)
  return images, (h, w)


def derain(model: nn.Module, params, image, pad_multiple: int = 16, sharding=None):
  """Derains one image (H, W, 3) or a batch (N, H, W, 3) of any height and width.

  Args:
    model: a deraining network (e.g. from ``nasnet_jax.restore``).
    params: its parameters.
    image: uint8 in [0, 255] or float in [0, 1], RGB.
    pad_multiple: the input is reflect-padded to multiples of this and cropped back.
    sharding: optional ``jax.sharding.Sharding`` to place the input with (used by the
      trainer to match its replicated parameters).

  Returns:
    The derained image(s), same shape as ``image``: uint8 for uint8 input, else float32
    in [0, 1].
  """
  array = np.asarray(image)
  is_uint8 = array.dtype == np.uint8
  if array.ndim not in (3, 4) or array.shape[-1] != 3:
    raise ValueError(f"derain expects an RGB image (H, W, 3) or batch (N, H, W, 3), "
                     f"got shape {array.shape}")
  batch = array[None] if array.ndim == 3 else array
  batch = batch.astype(np.float32) / 255.0 if is_uint8 else batch.astype(np.float32)
  padded, (h, w) = pad_to_multiple(batch, pad_multiple)
  x = jax.device_put(padded, sharding) if sharding is not None else jnp.asarray(padded)
  out = np.asarray(_apply(model, params, x))[:, :h, :w]
  if is_uint8:
    out = np.round(out * 255.0).astype(np.uint8)
  return out[0] if array.ndim == 3 else out
