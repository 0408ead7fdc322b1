"""Convolutions computed in the forms XLA:CPU runs fastest, as drop-ins for ``nn.Conv``.

``conv_general_dilated_for(impl)`` returns the ``conv_general_dilated`` to give
``flax.linen.Conv``: ``lax.conv_general_dilated`` itself for ``"xla"`` (and ``"auto"`` on
GPU and TPU); for ``"cpu"`` (``"auto"`` on CPU) a stride-1 NHWC convolution with the same
result and the same HWIO parameters, computed as a matrix product (1x1), k*k shifted
multiply-adds (depthwise) or XLA's convolution with a per-tap matrix-product kernel
gradient (full kxk from ``TAP_KERNEL_GRAD_MIN_CHANNELS``). Both kxk forms are
``jax.custom_jvp`` rules, so every JAX transformation works through them; anything else
goes to ``lax.conv_general_dilated``. ``compiler_options(model)`` turns XLA:CPU's YNNPACK
fusions off for a network whose ``xla_cpu_ynn_fusions`` is False. Why each form, and the
measurements: docs/design.md and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

CONV_IMPLS = ("auto", "cpu", "xla")

# The per-tap kernel gradient wins from Cin * Cout = 64 * 64 on and loses below it, where
# XLA's backward-filter convolution is used (benchmarks/RESULTS.md).
TAP_KERNEL_GRAD_MIN_CHANNELS = 64

# NASNet at least this wide keeps YNNPACK on XLA:CPU (docs/design.md).
YNN_MIN_FEATURES = 64
YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"

_NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def conv_general_dilated_for(impl: str) -> Callable[..., jax.Array]:
  """The ``conv_general_dilated`` for ``impl``: "auto" (``auto_conv``: the CPU forms where
  the computation runs on a CPU, XLA's elsewhere), "cpu" (``cpu_conv``) or "xla"."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
  return {"auto": auto_conv, "cpu": cpu_conv, "xla": lax.conv_general_dilated}[impl]


def auto_conv(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  precision=None,
  **kwargs,
) -> jax.Array:
  """``cpu_conv`` on a CPU, ``lax.conv_general_dilated`` on any other platform, chosen
  when the computation is lowered for its platform (``lax.platform_dependent``), not from
  the Python process's default backend: one ``jax.export`` for cpu, cuda and tpu carries
  the best form for each, whichever machine exported it. Arguments as
  ``lax.conv_general_dilated``."""
  settings = dict(
    window_strides=window_strides,
    padding=padding,
    lhs_dilation=lhs_dilation,
    rhs_dilation=rhs_dilation,
    dimension_numbers=dimension_numbers,
    feature_group_count=feature_group_count,
    precision=precision,
    **kwargs,
  )
  return lax.platform_dependent(
    lhs,
    rhs,
    cpu=lambda x, k: cpu_conv(x, k, **settings),
    default=lambda x, k: lax.conv_general_dilated(x, k, **settings),
  )


def compiler_options(model: Any, platform: str | None = None) -> dict[str, str] | None:
  """XLA compiler options for jitting ``model`` on ``platform`` (the default backend).

  On CPU, a network whose ``conv_impl`` resolves to the CPU forms and whose
  ``xla_cpu_ynn_fusions`` is False compiles with XLA:CPU's YNNPACK fusions off; anything
  else, or an ``XLA_FLAGS`` that sets the flag, gets None (XLA's defaults). Pass the
  result as ``jax.jit(..., compiler_options=...)``.
  """
  platform = platform or jax.default_backend()
  if platform != "cpu" or YNN_FLAG in os.environ.get("XLA_FLAGS", ""):
    return None
  if model.conv_impl not in ("auto", "cpu") or model.xla_cpu_ynn_fusions:
    return None
  return {YNN_FLAG: ""}


# The PyTorch models we mirror start from torch.nn.Conv2d's default initialisation: weights
# and biases uniform in +-1/sqrt(fan_in). Flax's default (LeCun normal, zero bias) has 3x
# the weight variance, which through the residual chain starts the demo net far from the
# identity (a larger initial loss than returning the rainy input unchanged).
PYTORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def pytorch_bias_init(fan_in: int):
  """PyTorch's Conv2d bias initialisation: uniform in +-1/sqrt(fan_in)."""
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def pytorch_init_conv(
  features: int, kernel_size: tuple[int, int], conv_impl: str = "auto", **kwargs
):
  """``nn.Conv`` with PyTorch's default initialisation, its fan-in read from the input,
  computed as ``conv_impl`` says (``conv_general_dilated_for``).

  Returns ``apply(x)``, which creates the convolution (inside the calling module's
  ``nn.compact`` method, under ``kwargs["name"]``) and applies it to ``x``.
  """

  def apply(x: jax.Array) -> jax.Array:
    groups = kwargs.get("feature_group_count", 1)
    fan_in = (x.shape[-1] // groups) * kernel_size[0] * kernel_size[1]
    return nn.Conv(
      features,
      kernel_size,
      kernel_init=PYTORCH_KERNEL_INIT,
      bias_init=pytorch_bias_init(fan_in),
      conv_general_dilated=conv_general_dilated_for(conv_impl),
      **kwargs,
    )(x)

  return apply


def _stride1_pads(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers):
  """((top, bottom), (left, right)) if this is a stride-1, undilated NHWC/HWIO
  convolution whose padding is at most kernel - 1 per side; else None."""
  if lhs.ndim != 4 or rhs.ndim != 4:
    return None
  # None means NCHW/OIHW to lax; strings are normalised to the spec tuples.
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  if tuple(map(tuple, dn)) != tuple(map(tuple, _NHWC)):
    return None
  if any(s != 1 for s in window_strides):
    return None
  if any(d != 1 for d in (lhs_dilation or (1, 1))) or any(d != 1 for d in (rhs_dilation or (1, 1))):
    return None
  kh, kw = rhs.shape[0], rhs.shape[1]
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      pads = ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
    elif padding.upper() == "VALID":
      pads = (0, 0), (0, 0)
    else:
      return None
  else:
    pads = tuple(tuple(int(v) for v in p) for p in padding)
  if any(p < 0 or p > k - 1 for (lo, hi), k in zip(pads, (kh, kw)) for p in (lo, hi)):
    return None
  return pads


def cpu_conv(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  precision=None,
  **kwargs,
):
  """Drop-in for ``lax.conv_general_dilated`` (as ``nn.Conv`` calls it) in XLA:CPU's
  fastest forms (docs/design.md).

  Args:
    lhs: input, (N, H, W, Cin).
    rhs: kernel, (kh, kw, Cin / groups, Cout).
    window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
    feature_group_count, precision: as for ``lax.conv_general_dilated``.

  Returns:
    (N, H', W', Cout), H' and W' as ``padding`` gives (H, W for "SAME").
  """
  pads = _stride1_pads(
    lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers
  )
  channels = lhs.shape[-1]
  kh, kw = rhs.shape[0], rhs.shape[1]
  if pads is not None and not kwargs.get("preferred_element_type"):
    if feature_group_count == 1 and rhs.shape[2] == channels:
      if (kh, kw) == (1, 1):
        return lax.dot_general(lhs, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
      if rhs.shape[2] * rhs.shape[3] >= TAP_KERNEL_GRAD_MIN_CHANNELS**2:
        return _conv_tap_kernel_grad(lhs, rhs, pads)
    if feature_group_count == channels and rhs.shape[2] == 1 and rhs.shape[3] == channels:
      return _shifted_depthwise(lhs, rhs[:, :, 0, :], pads)
  return lax.conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=lhs_dilation,
    rhs_dilation=rhs_dilation,
    dimension_numbers=dimension_numbers,
    feature_group_count=feature_group_count,
    precision=precision,
    **kwargs,
  )


# ----------------------------------------------------------------------------- autodiff
#
# Both forms below are jax.custom_jvp functions, so forward mode (jax.jvp, jax.jacfwd,
# jax.hessian) and reverse mode (jax.grad, jax.vjp, under jax.vmap too) work. A
# convolution is linear in each input, so its tangent is conv(dx, k) + conv(x, dk); reverse
# mode is JAX's transpose of that tangent. The tangent in dk is written so that its
# transpose is the fastest kernel gradient on XLA:CPU (``_sum_over_taps``); the tangent
# in dx is written plainly, as JAX's transpose of it is already as fast as a hand-written
# one (benchmarks/RESULTS.md).


def _pad_hw(x: jax.Array, pads) -> jax.Array:
  (pt, pb), (pl, pr) = pads
  return jnp.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)])


def _sum_over_taps(
  xp: jax.Array,
  kernel: jax.Array,
  out_hw: tuple[int, int],
  product: Callable[[jax.Array, jax.Array], jax.Array],
) -> jax.Array:
  """sum over taps (i, j) of ``product(window_ij, kernel[i, j])``, where ``window_ij`` is
  the (N, out_h, out_w, Cin) slice of the padded input ``xp`` at offset (i, j).

  Linear in ``kernel``; used for the tangent in the kernel. It is a scan over the taps
  with a rematerialised body, so that (1) linearising it keeps only ``xp``, not every
  window, and (2) its transpose, the kernel gradient, is a loop with one
  ``product``-transpose per tap (a (N*H*W)-long reduction or matrix product). Unrolled,
  XLA:CPU fuses the kh*kw reductions into one multi-output loop, which is slower.
  Accumulates in float32 at least.
  """
  kh, kw = kernel.shape[:2]
  acc_dtype = jnp.promote_types(xp.dtype, jnp.float32)
  window_shape = (xp.shape[0],) + tuple(out_hw) + (xp.shape[3],)
  taps = jnp.array([(i, j) for i in range(kh) for j in range(kw)], jnp.int32)

  @jax.checkpoint
  def add_tap(acc, tap_and_weight):
    tap, weight = tap_and_weight
    window = lax.dynamic_slice(xp, (0, tap[0], tap[1], 0), window_shape)
    return acc + product(window.astype(acc_dtype), weight.astype(acc_dtype)), None

  acc = jnp.zeros(window_shape[:3] + kernel.shape[-1:], acc_dtype)
  out, _ = lax.scan(add_tap, acc, (taps, kernel.reshape((kh * kw,) + kernel.shape[2:])))
  return out.astype(xp.dtype)


def _is_zero(tangent) -> bool:
  return isinstance(tangent, SymbolicZero)


def _bilinear_jvp(conv: Callable, tap_product: Callable):
  """The JVP rule of ``conv(x, kernel, pads)``, linear in each of x and kernel:
  ``conv(dx, kernel) + sum over taps of tap_product(window, dkernel[tap])``
  (``_sum_over_taps``); a symbolic-zero tangent costs nothing."""

  def jvp(pads, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    out = conv(x, kernel, pads)
    terms = []
    if not _is_zero(dx):
      terms.append(conv(dx, kernel, pads))
    if not _is_zero(dkernel):
      terms.append(_sum_over_taps(_pad_hw(x, pads), dkernel, out.shape[1:3], tap_product))
    return out, (functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(out))

  return jvp


# ----------------------------------------------------------------------------- full kxk


def _xla_conv(x, kernel, pads):
  return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=_NHWC)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _conv_tap_kernel_grad(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
  """XLA's convolution of x (N, H, W, Cin) with kernel (kh, kw, Cin, Cout); only the
  kernel gradient is computed differently (one matrix product per tap)."""
  return _xla_conv(x, kernel, pads)


def _matmul_over_channels(window: jax.Array, weight: jax.Array) -> jax.Array:
  """(N, H, W, Cin) @ (Cin, Cout) as one 2-D product: transposed, it is one
  (N*H*W, Cin)^T @ (N*H*W, Cout) matmul; contracting N, H and W as three axes is much
  slower on XLA:CPU."""
  rows = window.reshape(-1, window.shape[-1]) @ weight
  return rows.reshape(window.shape[:3] + weight.shape[-1:])


# The input tangent transposes into XLA's input gradient, as fast as the forward pass.
_conv_tap_kernel_grad.defjvp(_bilinear_jvp(_xla_conv, _matmul_over_channels), symbolic_zeros=True)


# ----------------------------------------------------------------------------- depthwise


def _shift_sum(x: jax.Array, kernel: jax.Array, out_h: int, out_w: int) -> jax.Array:
  """sum_ij x[:, i:i+out_h, j:j+out_w, :] * kernel[i, j]; x already padded."""
  out = None
  for i in range(kernel.shape[0]):
    for j in range(kernel.shape[1]):
      term = x[:, i : i + out_h, j : j + out_w, :] * kernel[i, j]
      out = term if out is None else out + term
  return out


def _depthwise(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
  xp = _pad_hw(x, pads)
  kh, kw = kernel.shape[:2]
  return _shift_sum(xp, kernel, xp.shape[1] - kh + 1, xp.shape[2] - kw + 1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _shifted_depthwise(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
  """Depthwise correlation of x (N, H, W, C) with kernel (kh, kw, C), zero pads."""
  return _depthwise(x, kernel, pads)


_shifted_depthwise.defjvp(_bilinear_jvp(_depthwise, jnp.multiply), symbolic_zeros=True)
