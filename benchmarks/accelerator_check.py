"""Correctness and speed on one accelerator (GPU or TPU), in under 5 minutes.

  python benchmarks/accelerator_check.py --json=check.json --markdown=check.md
  python benchmarks/accelerator_check.py --smoke --json=/tmp/check.json   # tiny, any CPU

Correctness sections (the exit status is 1 if any fails), then speed against PyTorch
eager; the machinery is benchmarks/harness.py. The manual (every section, what passes,
how to read the report): benchmarks/README.md.
"""

from __future__ import annotations

import os

# Before JAX starts: take device memory as needed, so the PyTorch rows (in their own
# processes) and the peak-memory figures are not distorted by XLA's up-front reservation.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from configs import default  # noqa: E402
from nasnet_jax import checkpointing, export, inference, losses, pretrained_models  # noqa: E402
from nasnet_jax.models import convolution, create_model, init_params  # noqa: E402

# In the order they run: the cheap checks first, the paper net's compiles later, and the
# train step (the targets) before the convolution timings.
CORRECTNESS = (
  "conv_forms",
  "ssim_loss",
  "export",
  "train_state_donated",
  "flop_count",
  "bf16_output",
)
SPEED = ("train_speed", "conv_speed")
SECTIONS = CORRECTNESS + SPEED
# Relative error (max |a - ref| / max |ref|) a CPU form may have regardless of XLA's.
CONV_TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}
BF16_MIN_PSNR = 50.0
TARGET_SPEED_OVER_TORCH = 1.5
TARGET_PEAK_FRACTION = 0.40
RATIO = harness.SPEED_OVER_TORCH  # JAX's speed over PyTorch eager's: > 1 is faster


@dataclasses.dataclass(frozen=True)
class Sizes:
  arch: tuple[int, int, int]  # the net timed and compared in bf16
  crop: int  # training crop
  paper_batch: int
  large_batch: int
  conv_check_shape: tuple[int, int, int, int]  # NHWC, C >= 64 for the per-tap form
  conv_speed_shape: tuple[int, int, int, int]
  image: int  # side of the bf16-vs-f32 image
  export_image: tuple[int, int]  # odd (H, W)
  donation_arch: tuple[int, int, int]
  repeats: int  # timed calls per speed row
  steps_per_repeat: int


FULL = Sizes(
  arch=harness.PAPER_ARCH,
  crop=240,
  paper_batch=default.get_config().batch_size,
  large_batch=default.GPU_BATCH,
  conv_check_shape=(2, 32, 32, 64),
  conv_speed_shape=(default.GPU_BATCH, 240, 240, 64),
  image=256,
  export_image=(331, 253),
  donation_arch=(1, 4, 32),
  repeats=5,
  steps_per_repeat=5,
)
SMOKE = Sizes(
  arch=(1, 2, 8),
  crop=32,
  paper_batch=2,
  large_batch=4,
  conv_check_shape=(1, 8, 8, 64),
  conv_speed_shape=(2, 24, 24, 16),
  image=48,
  export_image=(37, 29),
  donation_arch=(1, 1, 8),
  repeats=2,
  steps_per_repeat=2,
)


# ----------------------------------------------------------------------------- report


class Report:
  """The JSON report, rewritten (atomically) after every change."""

  def __init__(self, path: str | None, header: dict):
    self.path = path
    self.data = {"machine": header, "sections": {}}
    self.write()

  def put(self, name: str, value: Any) -> None:
    self.data["sections"][name] = value
    self.write()

  def write(self) -> None:
    if not self.path:
      return
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(self.data, f, indent=1, default=_json_default)
    os.replace(tmp, self.path)


def _gb(nbytes: int | None) -> float | None:
  return None if nbytes is None else nbytes / 2**30


def _json_default(value):
  if isinstance(value, (np.floating, np.integer, np.bool_)):
    return value.item()
  raise TypeError(f"not JSON: {type(value)}")


def header() -> dict:
  """``harness.machine()`` and the device's dense bf16 peak."""
  return dict(
    harness.machine(), bf16_peak_tflops=(harness.bf16_peak(jax.devices()[0]) or 0) / 1e12 or None
  )


# ----------------------------------------------------------------------------- correctness


def _relative_error(a, ref) -> float:
  a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
  return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-30))


def _conv_vjp(conv, x, kernel, cotangent, groups, precision=None):
  """(output, d input, d kernel) of an NHWC/HWIO "SAME" stride-1 convolution."""

  def apply(x, kernel):
    return conv(
      x,
      kernel,
      (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups,
      precision=precision,
    )

  out, vjp = jax.vjp(apply, x, kernel)
  return (out,) + vjp(cotangent.astype(out.dtype))


def check_conv_forms(sizes: Sizes) -> dict:
  n, h, w, c = sizes.conv_check_shape
  cases = {
    "full 3x3": ((3, 3, c, c), 1),
    "depthwise 3x3": ((3, 3, 1, c), c),
    "pointwise 1x1": ((1, 1, c, c), 1),
  }
  rows = []
  keys = jax.random.split(jax.random.key(0), 3)
  for dtype in ("float32", "bfloat16"):
    for case, (kshape, groups) in cases.items():
      fan_in = kshape[0] * kshape[1] * kshape[2]
      x = jax.random.normal(keys[0], (n, h, w, c)).astype(dtype)
      k = (jax.random.normal(keys[1], kshape) / fan_in**0.5).astype(dtype)
      ct = jax.random.normal(keys[2], (n, h, w, c))
      reference = jax.jit(
        lambda x, k, ct: _conv_vjp(  # noqa: E731
          lax.conv_general_dilated,
          x.astype(jnp.float32),
          k.astype(jnp.float32),
          ct,
          groups,
          lax.Precision.HIGHEST,
        )
      )(x, k, ct)
      xla = jax.jit(
        lambda x, k, ct: _conv_vjp(  # noqa: E731
          lax.conv_general_dilated, x, k, ct, groups
        )
      )(x, k, ct)
      cpu_form = jax.jit(
        lambda x, k, ct: _conv_vjp(  # noqa: E731
          convolution.cpu_conv, x, k, ct, groups
        )
      )
      cpu = cpu_form(x, k, ct)
      # The CPU form must really be used: a custom_jvp (kxk) or a dot_general (1x1).
      jaxpr = str(
        jax.make_jaxpr(
          lambda x, k: convolution.cpu_conv(
            x,
            k,
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
          )
        )(x, k)
      )
      form_used = (
        "custom_jvp_call" in jaxpr
        if kshape[0] > 1
        else "dot_general" in jaxpr and "conv_general_dilated" not in jaxpr
      )
      row = {"dtype": dtype, "case": case, "form_used": form_used}
      ok = form_used
      for name, a, b, ref in zip(("output", "d_input", "d_kernel"), cpu, xla, reference):
        err, xla_err = _relative_error(a, ref), _relative_error(b, ref)
        row[f"{name}_error"], row[f"{name}_xla_error"] = err, xla_err
        ok = ok and err <= max(CONV_TOLERANCE[dtype], 2 * xla_err)
      row["ok"] = bool(ok)
      rows.append(row)
  return {"ok": all(r["ok"] for r in rows), "shape": list(sizes.conv_check_shape), "rows": rows}


def _smooth_pair(batch: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  data = harness.random_batch(batch, size, seed=seed)
  return (data["rainy"].astype(np.float32) / 255, data["clean"].astype(np.float32) / 255)


def check_ssim_loss(sizes: Sizes) -> dict:
  pred, target = _smooth_pair(2, sizes.crop, seed=4)
  value_and_grad = jax.value_and_grad(lambda p, t: losses.l1_ssim_loss(p, t)[0])
  device, host = jax.devices()[0], jax.devices("cpu")[0]
  results = {}
  for name, where in (("device", device), ("cpu", host)):
    p, t = jax.device_put((pred, target), where)
    loss, grad = jax.jit(value_and_grad)(p, t)
    results[name] = (float(loss), np.asarray(grad))
  p, t = jax.device_put((pred, target), device)
  ours = float(jnp.mean(jax.jit(losses.ssim)(p, t)))
  import dm_pix  # pylint: disable=g-import-not-at-top

  theirs = float(
    jnp.mean(
      jax.jit(
        lambda p, t: dm_pix.ssim(
          p,
          t,
          max_val=1.0,
          filter_size=losses.SSIM_FILTER_SIZE,
          filter_sigma=losses.SSIM_FILTER_SIGMA,
        )
      )(p, t)
    )
  )
  text = jax.jit(value_and_grad).lower(p, t).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  loss_diff = abs(results["device"][0] - results["cpu"][0])
  grad_error = _relative_error(results["device"][1], results["cpu"][1])
  all_highest = bool(dots) and all("HIGHEST" in line for line in dots)
  return {
    "ok": bool(
      loss_diff <= 1e-5 and grad_error <= 1e-4 and abs(ours - theirs) <= 1e-5 and all_highest
    ),
    "loss_device": results["device"][0],
    "loss_cpu": results["cpu"][0],
    "loss_difference": loss_diff,
    "gradient_relative_error": grad_error,
    "ssim": ours,
    "ssim_dm_pix_filter": theirs,
    "matrix_products": len(dots),
    "all_at_highest_precision": all_highest,
  }


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
  return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _paper_net(arch):
  config = harness.model_config(arch)
  model = create_model(config.model)
  return model, init_params(model, jax.random.PRNGKey(0))


def check_bf16_output(sizes: Sizes) -> dict:
  image = _smooth_pair(1, sizes.image, seed=3)[0][0]
  rows = []
  for name, (model, params) in (
    (f"paper net {'x'.join(map(str, sizes.arch))} (random weights)", _paper_net(sizes.arch)),
    ("shipped general model", pretrained_models.pretrained()),
  ):
    f32 = inference.Derainer(model, params)(image)
    bf16 = inference.Derainer(model, params, dtype="bfloat16")(image)
    psnr = _psnr(bf16, f32)
    rows.append(
      {
        "model": name,
        "psnr_bf16_vs_f32": psnr,
        "max_abs_difference": float(np.max(np.abs(bf16 - f32))),
        "ok": bool(psnr >= BF16_MIN_PSNR),
      }
    )
  return {
    "ok": all(r["ok"] for r in rows),
    "image": sizes.image,
    "min_psnr": BF16_MIN_PSNR,
    "rows": rows,
  }


def check_export(sizes: Sizes) -> dict:
  h, w = sizes.export_image
  image = _smooth_pair(1, max(h, w), seed=5)[0][:, :h, :w]
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export(pretrained_models.pretrained_path(), os.path.join(tmp, "general"))
    exported = export.load_exported(path)
    model, params = checkpointing.restore(path)
    from_artifact = np.asarray(exported.call(jax.device_put(image, jax.devices()[0])))[0]
    from_library = inference.Derainer(model, params)(image[0])
  diff = float(np.max(np.abs(from_artifact - from_library)))
  # On CPU both compute in float32. On a GPU XLA's float32 convolutions run in TF32 and
  # pick their algorithms per shape (the library pads to a size bucket, the artifact runs
  # at the exact size): allow half an 8-bit grey level.
  tolerance = 1e-4 if jax.default_backend() == "cpu" else 0.5 / 255
  return {
    "ok": bool(diff <= tolerance),
    "image": f"{w}x{h}",
    "platforms": list(exported.platforms),
    "max_abs_difference": diff,
    "tolerance": tolerance,
  }


def check_train_state_donated(sizes: Sizes) -> dict:
  from nasnet_jax import train_lib  # pylint: disable=g-import-not-at-top

  config = harness.model_config(sizes.donation_arch)
  config.batch_size, config.data.crop_size = 2, 32
  training = train_lib.build_training(config)
  state = training.init_state(seed=0)
  batch = training.place_batch(harness.random_batch(2, 32))
  compiled = training.step.lower(state, batch).compile()
  old = [leaf for leaf in jax.tree.leaves(state) if isinstance(leaf, jax.Array)]
  state_bytes = sum(leaf.nbytes for leaf in old)
  new_state, metrics = compiled(state, batch)
  jax.block_until_ready((new_state, metrics))
  deleted = sum(leaf.is_deleted() for leaf in old)
  alias = compiled.memory_analysis().alias_size_in_bytes
  return {
    "ok": bool(deleted == len(old) and alias >= state_bytes),
    "state_buffers": len(old),
    "deleted_after_step": int(deleted),
    "state_bytes": state_bytes,
    "xla_alias_bytes": int(alias),
  }


def check_flop_count(sizes: Sizes) -> dict:
  """XLA counts the elementwise work too (a few % more) but skips the taps that fall on
  the zero padding at the border (a few % less at 256²): the two agree within 5 %."""
  model = create_model(harness.model_config(sizes.arch, conv_impl="xla").model)
  side = 256
  xla = harness.xla_forward_flops(model, side)
  analytic = harness.nasnet_forward_flops_per_pixel(*sizes.arch) * side * side
  ratio = analytic / xla if xla else None
  return {
    "ok": ratio is not None and 0.95 <= ratio <= 1.05,
    "image": f"{side}x{side}",
    "analytic_gflop": analytic / 1e9,
    "xla_gflop": xla / 1e9 if xla else None,
    "analytic_over_xla": ratio,
  }


# ----------------------------------------------------------------------------- speed


def bench_convs(sizes: Sizes) -> dict:
  n, h, w, c = sizes.conv_speed_shape
  rows = []
  keys = jax.random.split(jax.random.key(1), 3)
  for dtype in ("bfloat16", "float32"):
    for case, (kshape, groups) in {
      "depthwise 3x3": ((3, 3, 1, c), c),
      "full 3x3": ((3, 3, c, c), 1),
    }.items():
      x = jax.random.normal(keys[0], (n, h, w, c)).astype(dtype)
      k = (jax.random.normal(keys[1], kshape) * 0.1).astype(dtype)
      ct = jax.random.normal(keys[2], (n, h, w, c)).astype(dtype)
      flops = 3 * 2 * kshape[0] * kshape[1] * kshape[2] * c * n * h * w
      times = {}
      for form, conv in (("xla", lax.conv_general_dilated), ("cpu", convolution.cpu_conv)):
        fn = jax.jit(lambda x, k, ct, conv=conv: _conv_vjp(conv, x, k, ct, groups))
        times[form] = harness.timed(
          lambda fn=fn: jax.block_until_ready(fn(x, k, ct)), sizes.repeats * 2, memory=None
        ).median_s
        rows.append(
          {
            "case": case,
            "dtype": dtype,
            "form": form,
            "ms_forward_backward": times[form] * 1e3,
            "tflop_per_s": flops / times[form] / 1e12,
          }
        )
      rows[-1]["cpu_form_over_xla_time"] = times["cpu"] / times["xla"]
  return {"shape": list(sizes.conv_speed_shape), "rows": rows}


TRAIN_ROWS = (("bfloat16", "large"), ("bfloat16", "paper"), ("float32", "paper"))


def train_rows(sizes: Sizes) -> list[dict]:
  return [
    {
      "dtype": dtype,
      "batch": sizes.large_batch if which == "large" else sizes.paper_batch,
      "batch_kind": which,
    }
    for dtype, which in TRAIN_ROWS
  ]


def jax_train_row(sizes: Sizes, row: dict) -> dict:
  """Images/s of the training loop's own step for ``row`` (dtype, batch), in this
  process; several steps between two waits, as the loop runs them."""
  config = harness.model_config(sizes.arch, dtype=row["dtype"], remat=False)
  config.batch_size, config.data.crop_size = row["batch"], sizes.crop
  trainer = harness.JaxTrainer(config, harness.random_batch(row["batch"], sizes.crop))

  def steps():
    for _ in range(sizes.steps_per_repeat):
      trainer.state, trainer.metrics = trainer.compiled(trainer.state, trainer.batch)
    jax.block_until_ready(trainer.metrics["loss"])

  # The peak covers the warm-up too: a training run's peak includes its first step.
  timing = harness.timed(steps, sizes.repeats, memory="all")
  seconds = timing.median_s / sizes.steps_per_repeat
  return {
    "images_per_s": row["batch"] / seconds,
    "step_ms": seconds * 1e3,
    "peak_memory_gb": _gb(timing.peak_bytes),
    "loss": float(trainer.metrics["loss"]),
    "xla_gflop_per_step": trainer.flops / 1e9 if trainer.flops else None,
  }


def torch_train_row(sizes: Sizes, row: dict) -> dict:
  """The same step in PyTorch eager: float32 NCHW, or bfloat16 autocast channels-last, on
  ``row["torch_device"]`` (JAX runs on the CPU in this process, to make the weights)."""
  torch = harness.import_torch()
  torch.manual_seed(0)
  config = harness.model_config(sizes.arch)
  params = init_params(create_model(config.model), jax.random.PRNGKey(0))
  bf16 = row["dtype"] == "bfloat16"
  trainer = harness.TorchTrainer(
    sizes.arch, params, config, bf16=bf16, channels_last=bf16, device=row["torch_device"]
  )
  batch = trainer.place(harness.random_batch(row["batch"], sizes.crop))
  cuda = trainer.device == "cuda"
  loss = None

  def steps():
    nonlocal loss
    for _ in range(sizes.steps_per_repeat):
      loss = trainer.step(batch, sync=False)
    loss = float(loss)  # waits for the device

  timing = harness.timed(steps, sizes.repeats, torch_cuda=cuda, memory="all")
  seconds = timing.median_s / sizes.steps_per_repeat
  return {
    "images_per_s": row["batch"] / seconds,
    "step_ms": seconds * 1e3,
    "peak_memory_gb": _gb(timing.peak_bytes),
    "loss": loss,
    "device": trainer.device,
    "layout": "channels-last" if bf16 else "NCHW",
    "tf32_convolutions": bool(cuda and torch.backends.cudnn.allow_tf32),
    "torch": torch.__version__,
  }


def run_worker(framework: str, smoke: bool, rows: list[dict]) -> None:
  """The child process: measures ``rows`` and prints one JSON line per row."""
  sizes = SMOKE if smoke else FULL
  measure = jax_train_row if framework == "jax" else torch_train_row
  for row in rows:
    try:
      result = measure(sizes, row)
    except Exception as e:  # pylint: disable=broad-except
      result = {"error": harness.error_line(e)}
    print("ROW " + json.dumps(dict(row, **result), default=_json_default), flush=True)


def _spawn(framework: str, smoke: bool, rows: list[dict], timeout: float) -> list[dict]:
  """Runs ``run_worker`` in a fresh process (so peak memory is the row's own, and PyTorch
  and JAX never share a device's allocator); a row that did not finish says why."""
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
  if framework == "torch":
    env["JAX_PLATFORMS"] = "cpu"  # JAX only makes the weights there
  command = [
    sys.executable,
    os.path.abspath(__file__),
    f"--worker={framework}",
    "--rows=" + json.dumps(rows),
  ] + (["--smoke"] if smoke else [])
  try:
    done = subprocess.run(
      command, env=env, capture_output=True, text=True, timeout=max(timeout, 1.0), check=False
    )
    stdout, why = (
      done.stdout,
      f"exit status {done.returncode}: " + (done.stderr.strip().splitlines() or [""])[-1][:300],
    )
  except subprocess.TimeoutExpired as e:
    stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    why = f"out of time after {timeout:.0f} s"
  results = [json.loads(line[4:]) for line in stdout.splitlines() if line.startswith("ROW ")]
  for row in rows[len(results) :]:
    results.append(dict(row, error=why))
  return results


def bench_train(sizes: Sizes, smoke: bool, deadline: float, report: Report) -> dict:
  peak = harness.bf16_peak()
  section = {"model": "x".join(map(str, sizes.arch)), "crop": sizes.crop, "rows": []}
  planned = [dict(r, framework=f) for r in train_rows(sizes) for f in ("jax", "torch")]
  # One process per row on an accelerator (clean peak memory); one per framework in the
  # smoke run (process start-up dominates at toy sizes).
  groups = (
    [[r] for r in planned]
    if not smoke
    else [[r for r in planned if r["framework"] == f] for f in ("jax", "torch")]
  )
  # PyTorch runs where JAX does: on the GPU, or on the CPU (the smoke run); it has no TPU.
  torch_device = {"gpu": "cuda", "cpu": "cpu"}.get(jax.default_backend())
  for group in groups:
    left = deadline - time.monotonic()
    framework = group[0]["framework"]
    rows = [{k: v for k, v in r.items() if k != "framework"} for r in group]
    if framework == "torch":
      rows = [dict(r, torch_device=torch_device) for r in rows]
    if left <= 0:
      results = [dict(r, error="out of time") for r in rows]
    elif framework == "torch" and torch_device is None:
      results = [dict(r, error=f"no PyTorch rows on {jax.default_backend()}") for r in rows]
    else:
      results = _spawn(framework, smoke, rows, left)
    for result in results:
      result["framework"] = framework
      if "images_per_s" in result:
        flops = harness.train_step_flops(sizes.arch, result["batch"], sizes.crop)
        result["analytic_tflop_per_s"] = flops / (result["step_ms"] / 1e3) / 1e12
        result["fraction_of_bf16_peak"] = (
          result["analytic_tflop_per_s"] * 1e12 / peak if peak else None
        )
      section["rows"].append(result)
      print(_speed_line(result), flush=True)
    add_ratios(section["rows"])
    report.put("train_speed", section)
  return section


def add_ratios(rows: list[dict]) -> None:
  """Each JAX row's speed over PyTorch eager's at the same dtype and batch
  (``harness.SPEED_OVER_TORCH``)."""
  harness.add_speed_over_torch(
    rows,
    case=lambda r: (r["dtype"], r["batch"]),
    is_torch=lambda r: r["framework"] == "torch",
    seconds=lambda r: r.get("step_ms"),
    rated=lambda r: r["framework"] == "jax",
  )


def targets(section: dict) -> dict:
  row = next(
    (
      r
      for r in section.get("rows", [])
      if r.get("framework") == "jax"
      and r.get("dtype") == "bfloat16"
      and r.get("batch_kind") == "large"
    ),
    None,
  )
  if row is None or "images_per_s" not in row:
    return {"met": None, "why": "the large-batch bfloat16 JAX row did not run"}
  ratio, fraction = row.get(RATIO), row.get("fraction_of_bf16_peak")
  return {
    RATIO: ratio,
    "target_" + RATIO: TARGET_SPEED_OVER_TORCH,
    "fraction_of_bf16_peak": fraction,
    "target_fraction": TARGET_PEAK_FRACTION,
    "met": (
      None
      if ratio is None or fraction is None
      else bool(ratio >= TARGET_SPEED_OVER_TORCH and fraction >= TARGET_PEAK_FRACTION)
    ),
  }


def _speed_line(row: dict) -> str:
  if "error" in row:
    return f"  {row['framework']} {row['dtype']} batch {row['batch']}: {row['error']}"
  return (
    f"  {row['framework']} {row['dtype']} batch {row['batch']}: "
    f"{row['images_per_s']:.2f} img/s, {row['step_ms']:.1f} ms/step, peak "
    f"{row['peak_memory_gb'] if row['peak_memory_gb'] is not None else float('nan'):.2f}"
    f" GB, {row['analytic_tflop_per_s']:.3g} TFLOP/s"
  )


# ----------------------------------------------------------------------------- report


def _check_detail(name: str, s: dict) -> str:
  """The one-line summary of a correctness section for the table."""
  if s.get("error"):
    return s["error"]
  if name == "conv_forms":
    worst = {
      d: max(
        max(r["output_error"], r["d_input_error"], r["d_kernel_error"])
        for r in s["rows"]
        if r["dtype"] == d
      )
      for d in ("float32", "bfloat16")
    }
    return "worst CPU-form error " + ", ".join(f"{d}: {e:.2g}" for d, e in worst.items())
  if name == "ssim_loss":
    return (
      f"device - cpu loss {s['loss_difference']:.2g}, gradient "
      f"{s['gradient_relative_error']:.2g}; dm_pix filter "
      f"{abs(s['ssim'] - s['ssim_dm_pix_filter']):.2g}"
    )
  if name == "bf16_output":
    return "; ".join(f"{r['model']}: {r['psnr_bf16_vs_f32']:.1f} dB" for r in s["rows"])
  if name == "export":
    return f"max |artifact - Derainer| {s['max_abs_difference']:.2g}"
  if name == "train_state_donated":
    return (
      f"{s['deleted_after_step']}/{s['state_buffers']} buffers freed, alias "
      f"{s['xla_alias_bytes']:,} B"
    )
  return f"analytic / XLA {s['analytic_over_xla']:.3f}"  # flop_count


def _train_cells(r: dict) -> list[str]:
  if "error" in r:
    return [r["framework"], r["dtype"], r["batch"], r["error"], "", "", "", ""]
  fraction, ratio = r.get("fraction_of_bf16_peak"), r.get(RATIO)
  return [
    r["framework"],
    r["dtype"],
    r["batch"],
    f"{r['images_per_s']:.3g}",
    f"{ratio:.2f}×" if ratio else "",
    "" if r["peak_memory_gb"] is None else format(r["peak_memory_gb"], ".2f"),
    f"{r['analytic_tflop_per_s']:.3g}",
    "" if fraction is None else format(100 * fraction, ".1f") + " %",
  ]


def markdown(data: dict) -> str:
  m = data["machine"]
  lines = [
    f"{m['date']}: {m['device']} ({m['backend']}, {m['devices']} device(s)), "
    f"{m['cpu']}, jax {m['jax']}",
    "",
  ]
  sections = data["sections"]
  lines += harness.markdown_table(
    ("check", "ok", "detail"),
    [
      (name, "yes" if sections[name].get("ok") else "NO", _check_detail(name, sections[name]))
      for name in CORRECTNESS
      if name in sections
    ],
  )
  conv = sections.get("conv_speed", {})
  if conv.get("rows"):
    lines += ["", f"Convolution forward + backward, {conv['shape']} (NHWC):", ""]
    lines += harness.markdown_table(
      ("case", "dtype", "form", "ms", "TFLOP/s"),
      [
        (
          r["case"],
          r["dtype"],
          r["form"],
          f"{r['ms_forward_backward']:.3g}",
          f"{r['tflop_per_s']:.3g}",
        )
        for r in conv["rows"]
      ],
    )
  train = sections.get("train_speed", {})
  if train.get("rows"):
    lines += ["", f"Train step, NASNet {train['model']}, crop {train['crop']}:", ""]
    lines += harness.markdown_table(
      (
        "framework",
        "dtype",
        "batch",
        "images/s",
        "JAX / PyTorch",
        "peak GB",
        "TFLOP/s (analytic)",
        "of bf16 peak",
      ),
      [_train_cells(r) for r in train["rows"]],
    )
  if "targets" in sections:
    t = sections["targets"]
    lines += [
      "",
      f"Targets (bf16, large batch: >= {TARGET_SPEED_OVER_TORCH}× PyTorch "
      f"eager, >= {TARGET_PEAK_FRACTION:.0%} of bf16 peak): met = {t.get('met')}",
    ]
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--json", default="accelerator_check.json", help="the report, rewritten after every section"
  )
  parser.add_argument("--markdown", default=None, help="also write the tables here")
  parser.add_argument(
    "--sections", default=",".join(SECTIONS), help=f"comma-separated, from {','.join(SECTIONS)}"
  )
  parser.add_argument(
    "--smoke", action="store_true", help="toy sizes: checks the script itself, on any CPU"
  )
  parser.add_argument(
    "--time_limit_s",
    type=float,
    default=285.0,
    help="sections and speed rows not started by then are recorded as out of time",
  )
  parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--rows", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    run_worker(args.worker, args.smoke, json.loads(args.rows))
    return 0
  sections = [s for s in args.sections.split(",") if s]
  unknown = sorted(set(sections) - set(SECTIONS))
  if unknown:
    raise SystemExit(f"--sections: unknown {', '.join(unknown)}; choose from {','.join(SECTIONS)}")
  deadline = time.monotonic() + args.time_limit_s
  sizes = SMOKE if args.smoke else FULL
  report = Report(args.json, dict(header(), smoke=args.smoke))
  print(json.dumps(report.data["machine"]), flush=True)
  checks = {
    "conv_forms": check_conv_forms,
    "ssim_loss": check_ssim_loss,
    "bf16_output": check_bf16_output,
    "export": check_export,
    "train_state_donated": check_train_state_donated,
    "flop_count": check_flop_count,
    "conv_speed": bench_convs,
  }
  for name in sections:
    start = time.perf_counter()
    if time.monotonic() > deadline:
      result = (
        {"error": "out of time", "ok": False} if name in CORRECTNESS else {"error": "out of time"}
      )
    elif name == "train_speed":
      result = bench_train(sizes, args.smoke, deadline, report)
    else:
      try:
        result = checks[name](sizes)
      except Exception as e:  # pylint: disable=broad-except
        result = {"error": harness.error_line(e)}
        if name in CORRECTNESS:
          result["ok"] = False
    result["seconds"] = time.perf_counter() - start
    report.put(name, result)
    if name == "train_speed":
      report.put("targets", targets(result))
    status = ("ok" if result.get("ok") else "FAILED") if name in CORRECTNESS else "done"
    print(f"{name}: {result.get('error') or status} ({result['seconds']:.1f} s)", flush=True)
  table = markdown(report.data)
  print(table)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(table)
  failed = [n for n in sections if n in CORRECTNESS and not report.data["sections"][n]["ok"]]
  if failed:
    print(f"correctness FAILED: {', '.join(failed)}", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
