"""On-device augmentation of training pairs, applied identically to rainy and clean.

Both functions are pure and jittable and take a PRNG key and a tuple of (N, H, W, 3)
float arrays in [0, 1] (typically ``(rainy, clean)``); example i of every array gets the
same random transform, drawn per example.

* ``photometric``: gamma 0.7-1.4, white balance (a gain of +-10 % per channel) and
  brightness 0.75-1.15, then clipped to [0, 1]. Applied to the clean image *before*
  synthetic rain is rendered over it, so the rain itself is not recoloured.
* ``dihedral``: a random horizontal flip and rotation by a multiple of 90 degrees (the 8
  symmetries the x8 self-ensemble averages over). Applied *after* synthetic rain is
  rendered, so that the network sees rain in every orientation the ensemble will show it
  (rain rendered after a rotation is always near vertical, and the ensemble's rotated
  passes then showed it streaks it never saw).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GAMMA = (0.7, 1.4)
WHITE_BALANCE = 0.1
BRIGHTNESS = (0.75, 1.15)


def photometric(key: jax.Array, images: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
  """Random gamma, white balance and brightness, the same for example i of every array."""
  n = images[0].shape[0]
  kg, kw, kb = jax.random.split(key, 3)
  log_gamma = jax.random.uniform(
    kg, (n, 1, 1, 1), minval=jnp.log(GAMMA[0]), maxval=jnp.log(GAMMA[1])
  )
  balance = 1.0 + jax.random.uniform(kw, (n, 1, 1, 3), minval=-WHITE_BALANCE, maxval=WHITE_BALANCE)
  gain = jax.random.uniform(kb, (n, 1, 1, 1), minval=BRIGHTNESS[0], maxval=BRIGHTNESS[1])
  return tuple(
    jnp.clip(jnp.maximum(x, 0.0) ** jnp.exp(log_gamma) * balance * gain, 0.0, 1.0) for x in images
  )


def _symmetry(index: jax.Array, image: jax.Array) -> jax.Array:
  """Symmetry ``index`` (0-7: rot90 by index % 4, flipped if index >= 4) of (H, W, C)."""
  flipped = jnp.where(index >= 4, image[:, ::-1], image)
  return jax.lax.switch(index % 4, [lambda x, k=k: jnp.rot90(x, k) for k in range(4)], flipped)


def dihedral(
  key: jax.Array, images: tuple[jax.Array, ...], flip: bool = True, rotate: bool = True
) -> tuple[jax.Array, ...]:
  """A random flip and/or rot90 per example, the same for example i of every array.

  Rotation needs square images (training crops are).
  """
  n, h, w = images[0].shape[:3]
  if rotate and h != w:
    raise ValueError(f"random rotation needs square crops, got {h}x{w}")
  if not (flip or rotate):
    return images
  index = jax.random.randint(key, (n,), 0, 4 if rotate else 1)
  if flip:
    index = index + 4 * jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, 2)
  return tuple(jax.vmap(_symmetry)(index, x) for x in images)
