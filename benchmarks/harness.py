"""The benchmark harness: what the scripts in benchmarks/ share, so each is only its flags,
its sections and its own checks.

* models: the configs a row trains with (``model_config``) and made-up batches;
* timing and memory: one timer (``timed``: a warm-up call, then the median of repeats)
  and the peak memory of the timed calls (``PeakMemory``);
* trainers: the training loop's own JAX step (``JaxTrainer``) and the same step in
  PyTorch (``TorchTrainer``, ``torch_network``, ``torch_derain``);
* FLOPs: XLA's count (``xla_flops``, ``xla_forward_flops``, ``CallRecordingDerainer``) and
  the analytic NASNet count; the chips' dense bf16 peaks (``bf16_peak``);
* the one ratio against PyTorch (``SPEED_OVER_TORCH``, ``add_speed_over_torch``);
* the machine's description and the markdown table writer.

Usage of the scripts: benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from configs import ddsa_synthetic, default, dual_stage_synthetic
from nasnet_jax import convert, inference, train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAPER_ARCH = (3, 18, 64)  # NASNet as in the paper: stages, blocks, features
# The other networks, by name: each a function giving its config (recipe and model).
TRANSFORMER_MODELS = {
  "ddsa": lambda: default.use_ddsa_recipe(default.get_config()),
  "ddsa_demo": ddsa_synthetic.get_config,
  "dual_stage": lambda: default.use_dual_stage_recipe(default.get_config()),
  "dual_stage_demo": dual_stage_synthetic.get_config,
}

# Dense bf16 peak FLOP/s by jax device_kind prefix (vendor data sheets; GPUs: SXM parts;
# TPUs: per chip).
BF16_PEAK = {
  "NVIDIA H200": 989e12,
  "NVIDIA H100": 989e12,
  "NVIDIA A100": 312e12,
  "NVIDIA L4": 121e12,
  "NVIDIA A10": 125e12,
  "TPU v4": 275e12,
  "TPU v5 lite": 197e12,
  "TPU v5e": 197e12,
  "TPU v5p": 459e12,
  "TPU v5": 459e12,
  "TPU v6 lite": 918e12,
  "TPU v6e": 918e12,
}

# The one ratio against PyTorch, under this key in every script's rows.
SPEED_OVER_TORCH = "speed_over_torch"


# ----------------------------------------------------------------------------- models


def is_nasnet(arch) -> bool:
  """NASNet architectures are (stages, blocks, features); the others are named."""
  return not isinstance(arch, str)


def model_config(arch: tuple[int, int, int] | str, **overrides):
  """The config a row trains with: NASNet's paper recipe at ``arch``, or a transformer's
  own config (a name of ``TRANSFORMER_MODELS``); ``overrides`` are set on
  ``config.model``."""
  if is_nasnet(arch):
    config = default.get_config()
    config.model.stages, config.model.blocks, config.model.features = arch
  else:
    config = TRANSFORMER_MODELS[arch]()
  for k, v in overrides.items():
    config.model[k] = v
  # Every row times the network's step on the given batch: no rain rendered on device,
  # no rain-free pairs or augmentation (the PyTorch step has none either).
  config.data.synthetic_rain_fraction = 0.0
  config.data.clean_fraction = 0.0
  config.data.photometric_augmentation = False
  return config


def random_batch(batch: int, crop: int, seed: int = 0) -> dict[str, np.ndarray]:
  """A rainy/clean pair batch, uint8 (N, crop, crop, 3): smooth images plus streaks."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:crop, 0:crop] / max(crop, 1)
  clean = np.stack(
    [
      0.5
      + 0.4
      * np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6) + c)[..., None]
      * np.cos(4 * yy * rng.uniform(0.5, 2))[..., None]
      for _ in range(batch)
      for c in range(3)
    ]
  ).reshape(batch, 3, crop, crop)
  clean = np.moveaxis(clean, 1, -1)
  streaks = (rng.random((batch, crop, crop, 1)) < 0.03) * 0.5
  rainy = np.clip(clean + streaks, 0, 1)
  return {
    "rainy": (rainy * 255).round().astype(np.uint8),
    "clean": (clean * 255).round().astype(np.uint8),
  }


# ----------------------------------------------------------------------------- timing


def _status_kb(field: str) -> int | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except OSError:
    return None
  return None


def _release_free_memory() -> None:
  """Hands memory that malloc keeps cached back to the OS, so that the next row's peak
  RSS growth counts its own allocations (glibc only; a no-op elsewhere)."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top

    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


class PeakMemory:
  """Peak memory used while the block runs: RSS growth on CPU (VmHWM reset through
  /proc/self/clear_refs), the device allocator's peak on GPU. ``.bytes`` is None when the
  platform offers neither. ``torch_cuda``: the block runs PyTorch on a GPU, whose
  allocator then gives the peak."""

  def __init__(self, torch_cuda: bool = False):
    self.torch_cuda = torch_cuda
    self.bytes = None

  def __enter__(self):
    gc.collect()
    _release_free_memory()
    self.gpu = jax.default_backend() == "gpu" and not self.torch_cuda
    if self.torch_cuda:
      torch = import_torch()
      torch.cuda.synchronize()
      torch.cuda.reset_peak_memory_stats()
      self.base = torch.cuda.memory_allocated()
    elif self.gpu:
      # XLA's allocator keeps a process-wide peak that cannot be reset; report it with
      # the baseline of live buffers subtracted (meaningful for the largest row first).
      self.base = jax.devices()[0].memory_stats().get("bytes_in_use", 0)
    else:
      self.base = _status_kb("VmRSS")
      try:
        with open("/proc/self/clear_refs", "w") as f:
          f.write("5")
      except OSError:
        self.base = None
    return self

  def __exit__(self, *exc):
    if self.torch_cuda:
      self.bytes = import_torch().cuda.max_memory_allocated() - self.base
    elif self.gpu:
      self.bytes = jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0) - self.base
    elif self.base is not None:
      peak = _status_kb("VmHWM")
      self.bytes = None if peak is None else max(peak - self.base, 0) * 1024
    return False


class Timing(NamedTuple):
  """What ``timed`` measured: seconds of the warm-up call (compilation included), seconds
  of each timed call, and their peak memory in bytes (None if not measured)."""

  warmup_s: float
  times: list[float]
  peak_bytes: int | None

  @property
  def median_s(self) -> float:
    """The median of the timed calls: the figure every script reports."""
    return statistics.median(self.times)


def timed(
  fn: Callable[[], Any], repeats: int, *, torch_cuda: bool = False, memory: str | None = "repeats"
) -> Timing:
  """Calls ``fn`` once to warm up (compile), then ``repeats`` more times, each timed.

  ``fn`` must block until its work is done. ``memory``: "repeats" measures the peak
  memory of the timed calls, "all" of the warm-up call too, None not at all;
  ``torch_cuda``: ``fn`` runs PyTorch on a GPU (see ``PeakMemory``)."""
  if memory not in ("repeats", "all", None):
    raise ValueError(f"memory={memory!r}: one of 'repeats', 'all', None")
  meter = PeakMemory(torch_cuda=torch_cuda)
  times = []
  with meter if memory == "all" else contextlib.nullcontext():
    start = time.perf_counter()
    fn()
    warmup = time.perf_counter() - start
    with meter if memory == "repeats" else contextlib.nullcontext():
      for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
  return Timing(warmup, times, meter.bytes)


def xla_planned_bytes(compiled) -> int | None:
  """The device memory XLA plans for a compiled program (arguments, outputs and
  temporaries, less what is aliased), None if it does not say."""
  try:
    m = compiled.memory_analysis()
    return int(
      m.argument_size_in_bytes
      + m.output_size_in_bytes
      + m.temp_size_in_bytes
      - m.alias_size_in_bytes
    )
  except Exception:  # pylint: disable=broad-except
    return None


# ----------------------------------------------------------------------------- JAX


class JaxTrainer:
  """The training loop's own step (``train_lib.build_training``: the config's loss,
  optimizer and compiler options), compiled once for ``batch``, with the state donated."""

  def __init__(self, config, batch):
    training = train_lib.build_training(config)
    self.model = training.model
    self.state = training.init_state(seed=0)
    self.batch = training.place_batch(batch)
    self.compiled = training.step.lower(self.state, self.batch).compile()
    self.flops = xla_flops(self.compiled)
    self.metrics = None

  def step(self) -> float:
    self.state, self.metrics = self.compiled(self.state, self.batch)
    return float(self.metrics["loss"])


# ----------------------------------------------------------------------------- PyTorch


def import_torch():
  """The torch module, imported on first use: only the PyTorch rows need it."""
  import torch  # pylint: disable=g-import-not-at-top

  return torch


def torch_device() -> str:
  """ "cuda" where JAX runs on a GPU and PyTorch sees one, else "cpu"."""
  return "cuda" if jax.default_backend() == "gpu" and import_torch().cuda.is_available() else "cpu"


def torch_network(arch, params, device: str | None = None):
  """nasnet_jax.torch_nasnet.NASNet with the weights of our ``params``, on ``device``
  (default ``torch_device()``)."""
  from nasnet_jax import torch_nasnet  # pylint: disable=g-import-not-at-top

  torch = import_torch()
  stages, blocks, features = arch
  net = torch_nasnet.NASNet(stages, blocks, features)
  cfg = {
    "stages": stages,
    "blocks": blocks,
    "features": features,
    "attention": "na",
    "fuse_stages": True,
  }
  state = convert.to_state_dict(jax.device_get(params), cfg)
  net.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()})
  return net.to(device or torch_device())


def torch_ssim(a, b):
  """dm_pix.ssim(a, b, max_val=1, filter_size=11, filter_sigma=1.5) for NCHW tensors,
  averaged over the batch: a separable Gaussian, "valid" filtering, the same clamps."""
  torch = import_torch()
  f = torch.exp(-0.5 * ((torch.arange(11, dtype=torch.float32, device=a.device) - 5) / 1.5) ** 2)
  f = f / f.sum()
  c = a.shape[1]
  fy = f.view(1, 1, 11, 1).repeat(c, 1, 1, 1)
  fx = f.view(1, 1, 1, 11).repeat(c, 1, 1, 1)

  def filt(z):
    z = torch.nn.functional.conv2d(z, fx, groups=c)
    return torch.nn.functional.conv2d(z, fy, groups=c)

  mu0, mu1 = filt(a), filt(b)
  mu00, mu11, mu01 = mu0 * mu0, mu1 * mu1, mu0 * mu1
  eps = torch.finfo(torch.float32).eps ** 2
  s00 = torch.clamp(filt(a * a) - mu00, min=eps)
  s11 = torch.clamp(filt(b * b) - mu11, min=eps)
  s01 = filt(a * b) - mu01
  s01 = torch.sign(s01) * torch.minimum(torch.sqrt(s00 * s11), torch.abs(s01))
  c1, c2 = 0.01**2, 0.03**2
  ssim_map = ((2 * mu01 + c1) * (2 * s01 + c2)) / ((mu00 + mu11 + c1) * (s00 + s11 + c2))
  return ssim_map.mean()


class TorchTrainer:
  """The same step as ``train_lib.train_step``, in PyTorch: uint8 NHWC batch in,
  L1 + (1 - SSIM), backward, RAdam with cosine annealing.

  ``bf16``: the network under bfloat16 autocast; ``channels_last``: the network's weights
  and its input in PyTorch's channels-last memory format (cuDNN's fast layout for
  reduced precision); the loss is computed in float32 either way. ``device``: "cpu" or
  "cuda" (default ``torch_device()``)."""

  def __init__(
    self,
    arch,
    params,
    config,
    *,
    compile_net=False,
    bf16=False,
    channels_last=False,
    device: str | None = None,
  ):
    torch = import_torch()
    self.device = device or torch_device()
    if self.device == "cuda" and not torch.cuda.is_available():
      raise RuntimeError(f"PyTorch {torch.__version__} sees no CUDA device")
    self.net = torch_network(arch, params, self.device)
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.net = self.net.to(memory_format=self.memory_format)
    self.forward = torch.compile(self.net) if compile_net else self.net
    self.bf16 = bf16
    self.opt = torch.optim.RAdam(
      self.net.parameters(),
      lr=config.learning_rate,
      betas=(config.adam_b1, config.adam_b2),
      eps=1e-8,
    )
    self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, config.total_steps)

  def place(self, batch) -> tuple[Any, Any]:
    """uint8 NHWC numpy ``{"rainy", "clean"}`` -> float (N, 3, H, W) tensors in [0, 1] on
    the trainer's device, in its memory format."""
    torch = import_torch()
    return tuple(
      (torch.from_numpy(batch[k]).to(self.device).permute(0, 3, 1, 2).float() / 255).contiguous(
        memory_format=self.memory_format
      )
      for k in ("rainy", "clean")
    )

  def step(self, batch, sync: bool = True):
    """One optimisation step on ``batch`` (numpy, or ``place``'s tensors). Returns the
    loss as a float; with ``sync=False`` as a tensor, without waiting for the device."""
    torch = import_torch()
    rainy, clean = self.place(batch) if isinstance(batch, dict) else batch
    with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
      pred = self.forward(rainy)
    pred = pred.float()
    loss = (pred - clean).abs().mean() + (1 - torch_ssim(pred, clean))
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    self.sched.step()
    if not sync:
      return loss.detach()
    if self.device == "cuda":
      torch.cuda.synchronize()
    return float(loss.detach())


def torch_derain(
  net, image: np.ndarray, tile: int | None, overlap: int, bf16: bool = False
) -> np.ndarray:
  """(H, W, 3) float32 -> (H, W, 3) through ``net`` over the same tiles as Derainer."""
  torch = import_torch()
  device = next(net.parameters()).device.type
  h, w, _ = image.shape
  x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None]
  out = torch.zeros_like(x)
  with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
    whole = ((0, h, 0, w), (0, h, 0, w))
    tiles = (
      [whole]
      if tile is None or (h <= tile and w <= tile)
      else inference.tile_windows(h, w, tile, overlap)
    )
    for (cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1) in tiles:
      y = net(x[:, :, wy0:wy1, wx0:wx1]).float()
      out[:, :, cy0:cy1, cx0:cx1] = y[:, :, cy0 - wy0 : cy1 - wy0, cx0 - wx0 : cx1 - wx0]
  if device == "cuda":
    torch.cuda.synchronize()
  # Clipped to [0, 1], as Derainer returns float images.
  return out[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()


# ----------------------------------------------------------------------------- FLOPs


def xla_flops(computation) -> float | None:
  """XLA's FLOP count of a lowered or compiled computation (None if it gives none)."""
  cost = computation.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def xla_forward_flops(model, side: int, params=None) -> float | None:
  """XLA's FLOP count of one forward pass of ``model`` on a (1, side, side, 3) float32
  image: lowered from abstract parameters (``params``, default ``jax.eval_shape`` of the
  initialisation), so nothing is run or allocated."""
  from nasnet_jax.models import init_params  # pylint: disable=g-import-not-at-top

  x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  if params is None:
    params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  return xla_flops(jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, x))


class CallRecordingDerainer(inference.Derainer):
  """Derainer that records the shape of every network call, for XLA's FLOP count."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.calls = []

  def _run(self, images, valid):
    self.calls.append((images.shape, valid.shape))
    return super()._run(images, valid)

  def gflop(self) -> float | None:
    """XLA's GFLOPs (of the optimised program) for the calls recorded so far."""
    total = 0.0
    for shapes in sorted(set(self.calls)):
      compiled = self._apply.lower(
        self.model, self.params, *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)
      ).compile()
      flops = xla_flops(compiled)
      if flops is None:
        return None
      total += flops * self.calls.count(shapes)
    return total / 1e9


def nasnet_forward_flops_per_pixel(stages: int, blocks: int, features: int) -> int:
  """Multiply-adds x 2 of one NASNet forward pass (neuron attention, stages fused) per
  output pixel: the convolutions only (biases and elementwise work are left out)."""
  f = features
  conv3 = lambda cin, cout: 2 * 9 * cin * cout  # noqa: E731
  attention = 2 * 9 * f + 2 * f * f  # depthwise 3x3, pointwise 1x1
  block = conv3(f, f) + conv3(2 * f, f) + attention
  stage = blocks * block + conv3(f, f)  # + the tail conv
  fusion = conv3(stages * f, f) + 2 * f * f + attention
  return conv3(3, f) + stages * stage + fusion + conv3(f, f) + conv3(f, 3)


def train_step_flops(arch, batch: int, crop: int) -> float:
  """Forward + backward (input and weight gradients: 2x the forward) of one NASNet step;
  unlike XLA's count of the step, it leaves out remat's recomputation and the loss."""
  return 3.0 * nasnet_forward_flops_per_pixel(*arch) * batch * crop * crop


def bf16_peak(device=None) -> float | None:
  """Dense bf16 peak FLOP/s of ``device`` (default: the first), None if not known."""
  device = device or jax.devices()[0]
  if device.platform == "cpu":
    return None
  # Longest prefix first: "TPU v5 lite" before "TPU v5".
  for prefix in sorted(BF16_PEAK, key=len, reverse=True):
    if device.device_kind.startswith(prefix):
      return BF16_PEAK[prefix]
  return None


# ----------------------------------------------------------------------------- ratio


def add_speed_over_torch(
  rows: list[dict],
  case: Callable[[dict], Hashable | None],
  is_torch: Callable[[dict], bool],
  seconds: Callable[[dict], float | None],
  rated: Callable[[dict], bool] = lambda row: True,
) -> None:
  """Sets ``row[SPEED_OVER_TORCH]``: this row's speed over PyTorch's on the same case,
  i.e. the PyTorch row's seconds divided by this row's. Above 1 the row is faster than
  PyTorch, below 1 slower; the PyTorch row itself gets 1.

  ``case(row)``: what must match (None: the row takes no part); ``is_torch``: the
  reference row of a case (the first measured one); ``seconds``: a row's time, None if it
  was not measured (then it gets no ratio); ``rated``: which measured rows get one. A
  rated row whose case has no measured PyTorch row gets None."""
  references = {}
  for row in rows:
    key = case(row)
    if key is not None and is_torch(row) and seconds(row):
      references.setdefault(key, seconds(row))
  for row in rows:
    key = case(row)
    if key is not None and seconds(row) and rated(row):
      reference = references.get(key)
      row[SPEED_OVER_TORCH] = None if reference is None else reference / seconds(row)


# ----------------------------------------------------------------------------- machine


def cpu_name() -> str:
  """This machine's CPU model and logical core count (Linux), or its architecture."""
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    if names:
      return f"{names[0]} ({len(names)} logical cores)"
  except OSError:
    pass
  return platform.processor() or platform.machine()


def commit() -> str:
  """The short hash of the checked-out commit, or "unknown" outside git."""
  try:
    return (
      subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
      ).stdout.strip()
      or "unknown"
    )
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def machine(torch: bool = False) -> dict[str, Any]:
  """What a result depends on: date, commit, CPU, JAX's backend and device, versions (and
  PyTorch's with ``torch``), and XLA_FLAGS when set."""
  device = jax.devices()[0]
  info = {
    "date": datetime.date.today().isoformat(),
    "commit": commit(),
    "cpu": cpu_name(),
    "backend": jax.default_backend(),
    "device": device.device_kind,
    "devices": jax.device_count(),
    "jax": jax.__version__,
    "python": platform.python_version(),
  }
  if torch:
    module = import_torch()
    info.update(torch=module.__version__, torch_threads=module.get_num_threads())
  if os.environ.get("XLA_FLAGS"):
    info["xla_flags"] = os.environ["XLA_FLAGS"]
  return info


def machine_line(info: dict[str, Any]) -> str:
  """``machine()``'s facts on one line, for the head of a table."""
  return (
    f"{info['date']}, commit {info['commit']}, {info['cpu']}, jax backend "
    f"{info['backend']} ({info['device']}, {info['devices']} device(s)); "
    f"jax {info['jax']}, "
    + (f"torch {info['torch']} ({info['torch_threads']} threads), " if "torch" in info else "")
    + f"python {info['python']}"
    + (f", XLA_FLAGS={info['xla_flags']!r}" if info.get("xla_flags") else "")
  )


# ----------------------------------------------------------------------------- report


def fmt(value, digits: int = 3) -> str:
  """A table cell: None as "–", floats to ``digits`` significant digits (whole numbers
  from 1000 up), anything else as ``str``."""
  if value is None:
    return "–"
  if isinstance(value, float):
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
  return str(value)


def markdown_table(headings: Sequence[str], rows) -> list[str]:
  """The lines of a markdown table: ``headings``, the rule, then one line per row of
  ``rows`` (sequences of cells, written with ``str``)."""
  return ["| " + " | ".join(headings) + " |", "|" + " --- |" * len(headings)] + [
    "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
  ]


def error_line(e: BaseException, limit: int = 300) -> str:
  """An exception as one line: its type and the first ``limit`` characters of its
  message's first line (for a row or section that failed)."""
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:limit] if text else ''}"
