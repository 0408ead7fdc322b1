"""JAX against PyTorch, side by side in one process: train step, inference, memory, FLOPs.

  python benchmarks/run.py                        # the whole matrix (hours on a 2-core CPU)
  python benchmarks/run.py --models=demo --repeats=5
  python benchmarks/run.py --models=paper --crops=240 --batches=2 --sections=train
  python benchmarks/run.py --markdown=/tmp/bench.md --json=/tmp/bench.json
  python benchmarks/run.py --models=ddsa_demo,dual_stage_demo --sections=sizes,train

Models are named (``paper``: NASNet 3 stages x 18 blocks x 64 features, the default;
``demo``: 1 x 4 x 32, ``configs/synthetic.py``; ``general``: 2 x 4 x 40, the shipped
model's architecture) or given as ``SxBxF``. For each, the
PyTorch network is ``nasnet_jax/torch_nasnet.py`` (the authors' module structure) holding the
very same weights (converted with ``nasnet_jax.convert``), and its first training losses
are checked against ours before anything is timed, so both sides run the same network and
the same step. The transformer networks (``ddsa``, ``dual_stage`` at their default sizes,
``ddsa_demo``, ``dual_stage_demo`` as in their synthetic configs) have no PyTorch twin:
they get the JAX rows only, trained with their own recipes' loss and optimizer.

Sections:

* ``sizes``: parameters and XLA's FLOP count of one forward pass on a 256x256 image, for
  every named network and each of ``--models`` (lax convolutions, so the count is the
  textbook one: 2 FLOPs per multiply-add, plus the elementwise work).

* ``train``: images/s of one optimisation step (forward, L1 + (1 - SSIM) with an 11x11
  Gaussian window, backward, RAdam with the cosine schedule) for every model x crop x
  batch. JAX: the training loop's step (``train_lib.build_training``: each network's own
  loss and optimizer) with the state donated, in float32, with
  remat, and in bfloat16. PyTorch: eager float32 (NCHW, as the authors run it), eager
  bfloat16 autocast, and ``torch.compile`` where it works.
* ``inference``: milliseconds per megapixel through ``nasnet_jax.Derainer`` (whole image,
  and tiled with the exact overlap) against the PyTorch network under
  ``torch.inference_mode`` on the same image and the same tiles, and against the network
  exported to ONNX (jax2onnx) and run by ONNX Runtime (``inference.OnnxDerainer``).

Every JAX row also gives XLA's FLOP count for the compiled step (``cost_analysis``), the
achieved GFLOP/s and, on a GPU of known peak, the fraction of its dense bf16 peak. Memory
is the peak resident-set growth during the timed calls on CPU (Linux's VmHWM, reset per
row through ``/proc/self/clear_refs``), and the allocator's peak on GPU. Times are medians
of ``--repeats`` calls after one warm-up call (which includes compilation).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import ddsa_synthetic, default, dual_stage_synthetic  # noqa: E402
from nasnet_jax import convert, inference, train_lib  # noqa: E402
from nasnet_jax.models import convolution, create_model, init_params  # noqa: E402

NAMED_MODELS = {"paper": (3, 18, 64), "demo": (1, 4, 32),
                "general": (2, 4, 40)}   # the shipped model's architecture
# The other networks, by name: each a function giving its config (recipe and model).
TRANSFORMER_MODELS = {
    "ddsa": lambda: default.use_ddsa_recipe(default.get_config()),
    "ddsa_demo": ddsa_synthetic.get_config,
    "dual_stage": lambda: default.use_dual_stage_recipe(default.get_config()),
    "dual_stage_demo": dual_stage_synthetic.get_config,
}
SIZE_IMAGE = 256

# Dense bf16 peak FLOP/s by jax device_kind prefix (vendor data sheets; GPUs: SXM parts;
# TPUs: per chip).
BF16_PEAK = {"NVIDIA H200": 989e12, "NVIDIA H100": 989e12, "NVIDIA A100": 312e12,
             "NVIDIA L4": 121e12, "NVIDIA A10": 125e12,
             "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
             "TPU v5": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12}


# ----------------------------------------------------------------------------- helpers


def parse_model(spec: str) -> tuple[str, tuple[int, int, int] | str]:
  """"paper", "demo" or "SxBxF" -> (label, (stages, blocks, features)); a name of
  ``TRANSFORMER_MODELS`` -> (name, name)."""
  if spec in NAMED_MODELS:
    s, b, f = NAMED_MODELS[spec]
    return f"{spec} {s}x{b}x{f}", NAMED_MODELS[spec]
  if spec in TRANSFORMER_MODELS:
    return spec, spec
  try:
    s, b, f = (int(v) for v in spec.split("x"))
  except ValueError:
    raise SystemExit(f"--models: {spec!r} is neither one of "
                     f"{sorted(NAMED_MODELS) + sorted(TRANSFORMER_MODELS)} nor "
                     "STAGESxBLOCKSxFEATURES (e.g. 1x6x64)") from None
  return spec, (s, b, f)


def is_nasnet(arch) -> bool:
  """NASNet architectures are (stages, blocks, features); the others are named."""
  return not isinstance(arch, str)


def model_config(arch: tuple[int, int, int] | str, **overrides):
  """The config a row trains with: NASNet's paper recipe at ``arch``, or a transformer's
  own config; ``overrides`` are set on ``config.model``."""
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
    import ctypes   # pylint: disable=g-import-not-at-top
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except (OSError, AttributeError):
    pass


class PeakMemory:
  """Peak memory used while the block runs: RSS growth on CPU (VmHWM reset through
  /proc/self/clear_refs), the device allocator's peak on GPU. ``.bytes`` is None when the
  platform offers neither."""

  def __init__(self, torch_cuda: bool = False):
    self.torch_cuda = torch_cuda
    self.bytes = None

  def __enter__(self):
    gc.collect()
    _release_free_memory()
    self.gpu = jax.default_backend() == "gpu" and not self.torch_cuda
    if self.torch_cuda:
      import torch   # pylint: disable=g-import-not-at-top
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
      import torch   # pylint: disable=g-import-not-at-top
      self.bytes = torch.cuda.max_memory_allocated() - self.base
    elif self.gpu:
      self.bytes = jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0) - self.base
    elif self.base is not None:
      peak = _status_kb("VmHWM")
      self.bytes = None if peak is None else max(peak - self.base, 0) * 1024
    return False


def timed(fn: Callable[[], Any], repeats: int, torch_cuda: bool = False
          ) -> tuple[float, list[float], float | None]:
  """(seconds of the warm-up call, seconds of each of ``repeats`` further calls, peak
  memory of the repeats in bytes or None). ``fn`` must block until its work is done;
  ``torch_cuda``: it runs PyTorch on a GPU (whose allocator then gives the peak)."""
  start = time.perf_counter()
  fn()
  warmup = time.perf_counter() - start
  times = []
  with PeakMemory(torch_cuda=torch_cuda) as memory:
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return warmup, times, memory.bytes


def random_batch(batch: int, crop: int, seed: int = 0) -> dict[str, np.ndarray]:
  """A rainy/clean pair batch, uint8 (N, crop, crop, 3): smooth images plus streaks."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:crop, 0:crop] / max(crop, 1)
  clean = np.stack([
      0.5 + 0.4 * np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6) + c)[..., None] *
      np.cos(4 * yy * rng.uniform(0.5, 2))[..., None]
      for _ in range(batch) for c in range(3)]).reshape(batch, 3, crop, crop)
  clean = np.moveaxis(clean, 1, -1)
  streaks = (rng.random((batch, crop, crop, 1)) < 0.03) * 0.5
  rainy = np.clip(clean + streaks, 0, 1)
  return {"rainy": (rainy * 255).round().astype(np.uint8),
          "clean": (clean * 255).round().astype(np.uint8)}


# ----------------------------------------------------------------------------- PyTorch


def _torch():
  import torch   # pylint: disable=g-import-not-at-top
  return torch


def torch_device() -> str:
  return "cuda" if jax.default_backend() == "gpu" and _torch().cuda.is_available() else "cpu"


def torch_network(arch, params, device: str | None = None):
  """nasnet_jax.torch_nasnet.NASNet with the weights of our ``params``, on ``device``
  (default ``torch_device()``)."""
  from nasnet_jax import torch_nasnet   # pylint: disable=g-import-not-at-top
  torch = _torch()
  stages, blocks, features = arch
  net = torch_nasnet.NASNet(stages, blocks, features)
  cfg = {"stages": stages, "blocks": blocks, "features": features, "attention": "na",
         "fuse_stages": True}
  state = convert.to_state_dict(jax.device_get(params), cfg)
  net.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()})
  return net.to(device or torch_device())


def torch_ssim(a, b):
  """dm_pix.ssim(a, b, max_val=1, filter_size=11, filter_sigma=1.5) for NCHW tensors,
  averaged over the batch: a separable Gaussian, "valid" filtering, the same clamps."""
  torch = _torch()
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
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  ssim_map = ((2 * mu01 + c1) * (2 * s01 + c2)) / ((mu00 + mu11 + c1) * (s00 + s11 + c2))
  return ssim_map.mean()


class TorchTrainer:
  """The same step as ``train_lib.train_step``, in PyTorch: uint8 NHWC batch in,
  L1 + (1 - SSIM), backward, RAdam with cosine annealing.

  ``bf16``: the network under bfloat16 autocast; ``channels_last``: the network's weights
  and its input in PyTorch's channels-last memory format (cuDNN's fast layout for
  reduced precision); the loss is computed in float32 either way. ``device``: "cpu" or
  "cuda" (default ``torch_device()``)."""

  def __init__(self, arch, params, config, *, compile_net=False, bf16=False,
               channels_last=False, device: str | None = None):
    torch = _torch()
    self.device = device or torch_device()
    if self.device == "cuda" and not torch.cuda.is_available():
      raise RuntimeError(f"PyTorch {torch.__version__} sees no CUDA device")
    self.net = torch_network(arch, params, self.device)
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.net = self.net.to(memory_format=self.memory_format)
    self.forward = torch.compile(self.net) if compile_net else self.net
    self.bf16 = bf16
    self.opt = torch.optim.RAdam(self.net.parameters(), lr=config.learning_rate,
                                 betas=(config.adam_b1, config.adam_b2), eps=1e-8)
    self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, config.total_steps)

  def place(self, batch) -> tuple[Any, Any]:
    """uint8 NHWC numpy ``{"rainy", "clean"}`` -> float (N, 3, H, W) tensors in [0, 1] on
    the trainer's device, in its memory format."""
    torch = _torch()
    return tuple(
        (torch.from_numpy(batch[k]).to(self.device).permute(0, 3, 1, 2).float() / 255
         ).contiguous(memory_format=self.memory_format) for k in ("rainy", "clean"))

  def step(self, batch, sync: bool = True):
    """One optimisation step on ``batch`` (numpy, or ``place``'s tensors). Returns the
    loss as a float; with ``sync=False`` as a tensor, without waiting for the device."""
    torch = _torch()
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


def torch_derain(net, image: np.ndarray, tile: int | None, overlap: int,
                 bf16: bool = False) -> np.ndarray:
  """(H, W, 3) float32 -> (H, W, 3) through ``net`` over the same tiles as Derainer."""
  torch = _torch()
  device = next(net.parameters()).device.type
  h, w, _ = image.shape
  x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None]
  out = torch.zeros_like(x)
  with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
    whole = ((0, h, 0, w), (0, h, 0, w))
    tiles = ([whole] if tile is None or (h <= tile and w <= tile)
             else inference.tile_windows(h, w, tile, overlap))
    for (cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1) in tiles:
      y = net(x[:, :, wy0:wy1, wx0:wx1]).float()
      out[:, :, cy0:cy1, cx0:cx1] = y[:, :, cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0]
  if device == "cuda":
    torch.cuda.synchronize()
  # Clipped to [0, 1], as Derainer returns float images.
  return out[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()


# ----------------------------------------------------------------------------- JAX


def xla_flops(computation) -> float | None:
  """XLA's FLOP count of a lowered or compiled computation (None if it gives none)."""
  cost = computation.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


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


# ----------------------------------------------------------------------------- sections


def check_same_step(arch, crop: int = 32, batch: int = 2, steps: int = 3) -> list[tuple]:
  """Both frameworks, same weights and batch: the losses of ``steps`` consecutive train
  steps (so the network, loss and optimizer) must agree. Raises if they do not."""
  config = model_config(arch)
  config.batch_size, config.data.crop_size = batch, crop
  data = random_batch(batch, crop, seed=1)
  jax_trainer = JaxTrainer(config, data)
  torch_trainer = TorchTrainer(arch, jax_trainer.state.params, config)
  pairs = [(jax_trainer.step(), torch_trainer.step(data)) for _ in range(steps)]
  for j, t in pairs:
    if abs(j - t) > 2e-3 * max(1.0, abs(t)):
      raise RuntimeError(f"JAX and PyTorch train steps disagree: losses {pairs}")
  return pairs


def bench_train(label, arch, crop, batch, repeats, variants, memory_limit) -> list[dict]:
  rows = []
  data = random_batch(batch, crop)
  base = {"section": "train", "model": label, "crop": crop, "batch": batch}
  jax_params = None
  planned = None   # bytes XLA plans for the float32 step without remat
  for variant in variants:
    row = dict(base, variant=variant)
    gc.collect()
    try:
      if variant.startswith("torch") and memory_limit:
        if planned is None:
          config = model_config(arch)
          config.batch_size, config.data.crop_size = batch, crop
          planned = _jax_bytes(
              train_lib.build_training(config).lower(data["rainy"].shape).compile())
        if planned and planned > memory_limit:
          row["skipped"] = (f"would need about {planned / 2**30:.1f} GB (XLA's plan for "
                            "the same step), over --memory_limit_gb")
          _emit(rows, row)
          continue
      if variant.startswith("jax"):
        overrides = {"remat": "remat" in variant,
                     "dtype": "bfloat16" if "bf16" in variant else "float32"}
        config = model_config(arch, **overrides)
        config.batch_size, config.data.crop_size = batch, crop
        trainer = JaxTrainer(config, data)
        need = _jax_bytes(trainer.compiled)
        if variant == "jax":
          planned = need
        if memory_limit and need and need > memory_limit:
          row["skipped"] = f"XLA plans {need / 2**30:.1f} GB, over --memory_limit_gb"
          _emit(rows, row)
          trainer = None
          continue
        if jax_params is None:
          jax_params = jax.device_get(trainer.state.params)
        row["xla_gflop"] = trainer.flops / 1e9 if trainer.flops else None
        row["compiler_options"] = convolution.compiler_options(trainer.model)
        warmup, times, memory = timed(trainer.step, repeats)
        row["xla_planned_gb"] = need / 2**30 if need else None
      else:
        torch = _torch()
        if jax_params is None:
          jax_params = init_params(create_model(model_config(arch).model),
                                   jax.random.PRNGKey(0))
        config = model_config(arch)
        trainer = TorchTrainer(arch, jax_params, config, compile_net="compile" in variant,
                               bf16="bf16" in variant)
        torch.manual_seed(0)
        warmup, times, memory = timed(lambda: trainer.step(data), repeats,
                                      torch_cuda=trainer.device == "cuda")
      row.update(warmup_s=warmup, step_s=statistics.median(times),
                 images_per_s=batch / statistics.median(times),
                 peak_memory_gb=None if memory is None else memory / 2**30)
    except Exception as e:   # pylint: disable=broad-except
      row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0][:150]}"
    _emit(rows, row)
    del row
    trainer = None
  return rows


def _emit(rows: list[dict], row: dict) -> None:
  """Adds a finished (or skipped) row and prints it at once."""
  rows.append(row)
  print(_row_line(row), flush=True)


def _jax_bytes(compiled) -> int | None:
  try:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes -
               m.alias_size_in_bytes)
  except Exception:   # pylint: disable=broad-except
    return None


def bench_inference(label, arch, size, tile, repeats, variants) -> list[dict]:
  rows = []
  h, w = size
  rng = np.random.default_rng(2)
  image = rng.random((h, w, 3), dtype=np.float32)
  config = model_config(arch)
  model = create_model(config.model)
  params = init_params(model, jax.random.PRNGKey(0))
  overlap = inference.Derainer(model, params, tile=tile).overlap
  net = None
  reference = None
  onnx_dir = tempfile.TemporaryDirectory()
  onnx_path = None
  for tiled in (False, True):
    for variant in variants:
      row = {"section": "inference", "model": label, "image": f"{w}x{h}",
             "tiles": f"{tile} + {overlap} overlap" if tiled else "whole",
             "variant": variant}
      gc.collect()
      try:
        torch_cuda = False
        if variant.startswith("jax"):
          derainer = _CallRecordingDerainer(
              model, params, tile=tile if tiled else None,
              dtype="bfloat16" if "bf16" in variant else None)
          fn = lambda: derainer(image)   # noqa: E731
        elif variant == "onnxruntime":
          if onnx_path is None:
            from nasnet_jax import export   # pylint: disable=g-import-not-at-top
            proto = export.onnx_model(model, params, config.model)
            onnx_path = os.path.join(onnx_dir.name, "model.onnx")
            with open(onnx_path, "wb") as f:
              f.write(proto.SerializeToString())
          derainer = inference.OnnxDerainer(onnx_path, tile=tile if tiled else None,
                                            overlap=overlap)
          fn = lambda: derainer(image)   # noqa: E731
        else:
          if net is None:
            net = torch_network(arch, params)
          fn = lambda: torch_derain(net, image, tile if tiled else None, overlap,   # noqa: E731
                                    bf16="bf16" in variant)
          torch_cuda = torch_device() == "cuda"
        out = fn()
        if variant.startswith("jax"):
          row["xla_gflop"] = derainer.gflop()
          row["compiler_options"] = convolution.compiler_options(derainer.model)
        if variant in ("jax", "torch", "onnxruntime"):
          if reference is None:
            reference = out
          row["max_abs_diff"] = float(np.max(np.abs(out - reference)))
        warmup, times, memory = timed(fn, repeats, torch_cuda=torch_cuda)
        mp = h * w / 1e6
        row.update(warmup_s=warmup, call_s=statistics.median(times),
                   ms_per_mp=statistics.median(times) * 1e3 / mp,
                   peak_memory_gb=None if memory is None else memory / 2**30)
      except Exception as e:   # pylint: disable=broad-except
        row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0][:150]}"
      _emit(rows, row)
  onnx_dir.cleanup()
  return rows


def bench_sizes(label, arch) -> dict:
  """Parameters and XLA's FLOPs for one forward pass on a SIZE_IMAGE^2 image."""
  model = create_model(model_config(arch, conv_impl="xla").model)
  x = jax.ShapeDtypeStruct((1, SIZE_IMAGE, SIZE_IMAGE, 3), jnp.float32)
  params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  flops = xla_flops(jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, x))
  return {"section": "sizes", "model": label, "class": type(model).__name__,
          "parameters": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)),
          "image": f"{SIZE_IMAGE}x{SIZE_IMAGE}",
          "xla_gflop": None if flops is None else flops / 1e9}


class _CallRecordingDerainer(inference.Derainer):
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
          self.model, self.params,
          *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)).compile()
      flops = xla_flops(compiled)
      if flops is None:
        return None
      total += flops * self.calls.count(shapes)
    return total / 1e9


# ----------------------------------------------------------------------------- report


def _fmt(v, digits=3):
  if v is None:
    return "–"
  if isinstance(v, float):
    return f"{v:,.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
  return str(v)


def _row_line(row):
  keys = [k for k in ("model", "parameters", "crop", "batch", "image", "tiles", "variant",
                      "images_per_s", "ms_per_mp", "peak_memory_gb", "xla_gflop", "skipped")
          if k in row]
  return "  ".join(f"{k}={_fmt(row[k])}" for k in keys)


def add_ratios(rows: list[dict]) -> None:
  """Speed of each row over PyTorch eager float32 on the same case; achieved GFLOP/s."""
  peak = bf16_peak()
  for row in rows:
    if "skipped" in row or row["section"] == "sizes":
      continue
    key = ("model", "crop", "batch") if row["section"] == "train" else ("model", "image",
                                                                         "tiles")
    ref = next((r for r in rows if r["section"] == row["section"] and r["variant"] == "torch"
                and "skipped" not in r and all(r.get(k) == row.get(k) for k in key)), None)
    seconds = row.get("step_s", row.get("call_s"))
    if ref is not None:
      row["vs_torch"] = ref.get("step_s", ref.get("call_s")) / seconds
    if row.get("xla_gflop"):
      row["gflop_per_s"] = row["xla_gflop"] / seconds
      if peak:
        row["fraction_of_bf16_peak"] = row["xla_gflop"] * 1e9 / seconds / peak


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


def machine() -> str:
  device = jax.devices()[0]
  torch = _torch()
  return (f"{datetime.date.today().isoformat()}, {cpu_name()}, jax backend {jax.default_backend()} "
          f"({device.device_kind}, {jax.device_count()} device(s)); jax {jax.__version__}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"python {platform.python_version()}"
          + (f", XLA_FLAGS={os.environ['XLA_FLAGS']!r}" if os.environ.get("XLA_FLAGS") else ""))


SIZE_COLUMNS = (("model", "model"), ("class", "class"), ("parameters", "parameters"),
                ("image", "image"), ("XLA GFLOP (forward)", "xla_gflop"))
TRAIN_COLUMNS = (("model", "model"), ("crop", "crop"), ("batch", "batch"),
                 ("variant", "variant"), ("images/s", "images_per_s"),
                 ("vs PyTorch eager", "vs_torch"), ("peak memory GB", "peak_memory_gb"),
                 ("XLA GFLOP/step", "xla_gflop"), ("GFLOP/s", "gflop_per_s"))
INFERENCE_COLUMNS = (("model", "model"), ("image", "image"), ("tiles", "tiles"),
                     ("variant", "variant"), ("ms per MP", "ms_per_mp"),
                     ("vs PyTorch eager", "vs_torch"), ("max abs diff", "max_abs_diff"),
                     ("peak memory GB", "peak_memory_gb"), ("XLA GFLOP", "xla_gflop"),
                     ("GFLOP/s", "gflop_per_s"))


def _table(rows: list[dict], columns) -> list[str]:
  """Markdown lines; a skipped row says why in its first measured column."""
  lines = ["| " + " | ".join(title for title, _ in columns) + " |",
           "|" + " --- |" * len(columns)]
  for r in rows:
    cells = []
    for i, (_, key) in enumerate(columns):
      if i == 4 and "skipped" in r:
        cells.append(f"skipped: {r['skipped']}")
      elif key == "vs_torch" and r.get(key):
        cells.append(_fmt(r[key]) + "×")
      elif key == "parameters":
        cells.append(f"{r[key]:,}")
      else:
        cells.append(_fmt(r.get(key), 2 if key == "max_abs_diff" else 3))
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def markdown(rows: list[dict], header: str) -> str:
  lines = [f"Machine: {header}", ""]
  for section, columns in (("sizes", SIZE_COLUMNS), ("train", TRAIN_COLUMNS),
                           ("inference", INFERENCE_COLUMNS)):
    section_rows = [r for r in rows if r["section"] == section]
    if section_rows:
      lines += _table(section_rows, columns) + [""]
  if any("fraction_of_bf16_peak" in r for r in rows):
    lines += ["Fraction of the GPU's dense bf16 peak: " + ", ".join(
        f"{r['model']} {r.get('crop', r.get('image'))} {r['variant']}: "
        f"{100 * r['fraction_of_bf16_peak']:.1f} %"
        for r in rows if "fraction_of_bf16_peak" in r)]
  return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="demo,paper",
                      help="comma-separated: paper, demo, SxBxF, or one of "
                      f"{', '.join(TRANSFORMER_MODELS)} (JAX rows only)")
  parser.add_argument("--crops", default="96,240")
  parser.add_argument("--batches", default="2,8")
  parser.add_argument("--sections", default="sizes,train,inference")
  parser.add_argument("--train_variants",
                      default="jax,jax_remat,jax_bf16,torch,torch_bf16,torch_compile")
  parser.add_argument("--inference_variants", default="jax,jax_bf16,torch,onnxruntime",
                      help="onnxruntime: the network exported to ONNX (jax2onnx), run by "
                      "ONNX Runtime through nasnet_jax.inference.OnnxDerainer")
  parser.add_argument("--image", default="1024x768",
                      help="WxH of the inference image (the paper net: see --paper_image)")
  parser.add_argument("--paper_image", default="512x384",
                      help="WxH for the inference of the paper net (12 TFLOP per "
                      "megapixel) and of ddsa and dual_stage")
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--paper_repeats", type=int, default=1,
                      help="repeats for the paper net, ddsa and dual_stage (minutes per "
                      "call on a CPU)")
  parser.add_argument("--memory_limit_gb", type=float, default=None,
                      help="skip a JAX train row whose XLA plan exceeds this (default: 80%% "
                      "of this machine's RAM on CPU, none on GPU)")
  parser.add_argument("--no_check", action="store_true",
                      help="skip the check that both frameworks give the same losses")
  parser.add_argument("--json", default=None, help="write the rows here")
  parser.add_argument("--markdown", default=None, help="write the tables here")
  args = parser.parse_args(argv)

  try:
    torch = _torch()
  except ImportError:
    raise SystemExit("benchmarks/run.py needs PyTorch as the yardstick: "
                     "pip install -e '.[test]' (torch==2.13.0)") from None
  torch.manual_seed(0)
  memory_limit = args.memory_limit_gb * 2**30 if args.memory_limit_gb else None
  if memory_limit is None and jax.default_backend() == "cpu":
    memory_limit = 0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  models = [parse_model(m) for m in args.models.split(",") if m]
  sections = set(args.sections.split(","))
  header = machine()
  print(header, flush=True)
  nasnets = [arch for _, arch in models if is_nasnet(arch)]
  if not args.no_check and nasnets and {"train", "inference"} & sections:
    pairs = check_same_step((1, 2, min(nasnets[0][2], 16)))
    print(f"same step check (JAX, PyTorch losses): {pairs}", flush=True)
  rows = []
  if "sizes" in sections:
    named = [parse_model(m) for m in list(NAMED_MODELS) + list(TRANSFORMER_MODELS)]
    for label, arch in named + [m for m in models if m not in named]:
      _emit(rows, bench_sizes(label, arch))
  for label, arch in models:
    big = arch in (NAMED_MODELS["paper"], "ddsa", "dual_stage")
    repeats = args.paper_repeats if big else args.repeats
    # Only NASNet has a PyTorch twin (nasnet_jax/torch_nasnet.py).
    keep = lambda variants: [v for v in variants.split(",")   # noqa: E731
                             if is_nasnet(arch) or v.startswith("jax")]
    # (ONNX: NASNet only; the transformers' padding does not convert, docs/onnx.md.)
    if "train" in sections:
      for crop in (int(c) for c in args.crops.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
          rows += bench_train(label, arch, crop, batch, repeats, keep(args.train_variants),
                              memory_limit)
    if "inference" in sections:
      image = args.paper_image if big else args.image
      w, h = (int(v) for v in image.split("x"))
      rows += bench_inference(label, arch, (h, w), args.tile, repeats,
                              keep(args.inference_variants))
  add_ratios(rows)
  table = markdown(rows, header)
  print(table)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(table)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": header, "rows": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
