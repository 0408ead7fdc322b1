"""JAX against PyTorch, side by side in one process: train step, inference, memory, FLOPs.

  python benchmarks/run.py --models=demo --repeats=5
  python benchmarks/run.py --models=paper --crops=240 --batches=2 --sections=train

Sections ``sizes``, ``train`` and ``inference``; the machinery is benchmarks/harness.py.
The manual (models, sections, how to read the tables): benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import fmt, is_nasnet, model_config  # noqa: E402
from nasnet_jax import inference, train_lib  # noqa: E402
from nasnet_jax.models import convolution, create_model, init_params  # noqa: E402

NAMED_MODELS = {
  "paper": harness.PAPER_ARCH,
  "demo": (1, 4, 32),
  "general": (2, 4, 40),
}  # the shipped model's architecture
SIZE_IMAGE = 256


def parse_model(spec: str) -> tuple[str, tuple[int, int, int] | str]:
  """ "paper", "demo" or "SxBxF" -> (label, (stages, blocks, features)); a name of
  ``harness.TRANSFORMER_MODELS`` -> (name, name)."""
  if spec in NAMED_MODELS:
    s, b, f = NAMED_MODELS[spec]
    return f"{spec} {s}x{b}x{f}", NAMED_MODELS[spec]
  if spec in harness.TRANSFORMER_MODELS:
    return spec, spec
  try:
    s, b, f = (int(v) for v in spec.split("x"))
  except ValueError:
    raise SystemExit(
      f"--models: {spec!r} is neither one of "
      f"{sorted(NAMED_MODELS) + sorted(harness.TRANSFORMER_MODELS)} nor "
      "STAGESxBLOCKSxFEATURES (e.g. 1x6x64)"
    ) from None
  return spec, (s, b, f)


# ----------------------------------------------------------------------------- sections


def check_same_step(arch, crop: int = 32, batch: int = 2, steps: int = 3) -> list[tuple]:
  """Both frameworks, same weights and batch: the losses of ``steps`` consecutive train
  steps (so the network, loss and optimizer) must agree. Raises if they do not."""
  config = model_config(arch)
  config.batch_size, config.data.crop_size = batch, crop
  data = harness.random_batch(batch, crop, seed=1)
  jax_trainer = harness.JaxTrainer(config, data)
  torch_trainer = harness.TorchTrainer(arch, jax_trainer.state.params, config)
  pairs = [(jax_trainer.step(), torch_trainer.step(data)) for _ in range(steps)]
  for j, t in pairs:
    if abs(j - t) > 2e-3 * max(1.0, abs(t)):
      raise RuntimeError(f"JAX and PyTorch train steps disagree: losses {pairs}")
  return pairs


def bench_train(label, arch, crop, batch, repeats, variants, memory_limit) -> list[dict]:
  rows = []
  data = harness.random_batch(batch, crop)
  base = {"section": "train", "model": label, "crop": crop, "batch": batch}
  jax_params = None
  planned = None  # bytes XLA plans for the float32 step without remat
  for variant in variants:
    row = dict(base, variant=variant)
    gc.collect()
    try:
      if variant.startswith("torch") and memory_limit:
        if planned is None:
          config = model_config(arch)
          config.batch_size, config.data.crop_size = batch, crop
          planned = harness.xla_planned_bytes(
            train_lib.build_training(config).lower(data["rainy"].shape).compile()
          )
        if planned and planned > memory_limit:
          row["skipped"] = (
            f"would need about {planned / 2**30:.1f} GB (XLA's plan for "
            "the same step), over --memory_limit_gb"
          )
          _emit(rows, row)
          continue
      if variant.startswith("jax"):
        overrides = {
          "remat": "remat" in variant,
          "dtype": "bfloat16" if "bf16" in variant else "float32",
        }
        config = model_config(arch, **overrides)
        config.batch_size, config.data.crop_size = batch, crop
        trainer = harness.JaxTrainer(config, data)
        need = harness.xla_planned_bytes(trainer.compiled)
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
        timing = harness.timed(trainer.step, repeats)
        row["xla_planned_gb"] = need / 2**30 if need else None
      else:
        torch = harness.import_torch()
        if jax_params is None:
          jax_params = init_params(create_model(model_config(arch).model), jax.random.PRNGKey(0))
        config = model_config(arch)
        trainer = harness.TorchTrainer(
          arch, jax_params, config, compile_net="compile" in variant, bf16="bf16" in variant
        )
        torch.manual_seed(0)
        timing = harness.timed(
          lambda: trainer.step(data), repeats, torch_cuda=trainer.device == "cuda"
        )
      row.update(
        warmup_s=timing.warmup_s,
        step_s=timing.median_s,
        images_per_s=batch / timing.median_s,
        peak_memory_gb=_gb(timing.peak_bytes),
      )
    except Exception as e:  # pylint: disable=broad-except
      row["skipped"] = harness.error_line(e, 150)
    _emit(rows, row)
    del row
    trainer = None
  return rows


def _emit(rows: list[dict], row: dict) -> None:
  """Adds a finished (or skipped) row and prints it at once."""
  rows.append(row)
  print(_row_line(row), flush=True)


def _gb(nbytes: int | None) -> float | None:
  return None if nbytes is None else nbytes / 2**30


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
      row = {
        "section": "inference",
        "model": label,
        "image": f"{w}x{h}",
        "tiles": f"{tile} + {overlap} overlap" if tiled else "whole",
        "variant": variant,
      }
      gc.collect()
      try:
        torch_cuda = False
        if variant.startswith("jax"):
          derainer = harness.CallRecordingDerainer(
            model,
            params,
            tile=tile if tiled else None,
            dtype="bfloat16" if "bf16" in variant else None,
          )
          fn = lambda: derainer(image)  # noqa: E731
        elif variant == "onnxruntime":
          if onnx_path is None:
            from nasnet_jax import export  # pylint: disable=g-import-not-at-top

            proto = export.onnx_model(model, params, config.model)
            onnx_path = os.path.join(onnx_dir.name, "model.onnx")
            with open(onnx_path, "wb") as f:
              f.write(proto.SerializeToString())
          derainer = inference.OnnxDerainer(
            onnx_path, tile=tile if tiled else None, overlap=overlap
          )
          fn = lambda: derainer(image)  # noqa: E731
        else:
          if net is None:
            net = harness.torch_network(arch, params)
          fn = lambda: harness.torch_derain(  # noqa: E731
            net, image, tile if tiled else None, overlap, bf16="bf16" in variant
          )
          torch_cuda = harness.torch_device() == "cuda"
        out = fn()
        if variant.startswith("jax"):
          row["xla_gflop"] = derainer.gflop()
          row["compiler_options"] = convolution.compiler_options(derainer.model)
        if variant in ("jax", "torch", "onnxruntime"):
          if reference is None:
            reference = out
          row["max_abs_diff"] = float(np.max(np.abs(out - reference)))
        timing = harness.timed(fn, repeats, torch_cuda=torch_cuda)
        mp = h * w / 1e6
        row.update(
          warmup_s=timing.warmup_s,
          call_s=timing.median_s,
          ms_per_mp=timing.median_s * 1e3 / mp,
          peak_memory_gb=_gb(timing.peak_bytes),
        )
      except Exception as e:  # pylint: disable=broad-except
        row["skipped"] = harness.error_line(e, 150)
      _emit(rows, row)
  onnx_dir.cleanup()
  return rows


def bench_sizes(label, arch) -> dict:
  """Parameters and XLA's FLOPs for one forward pass on a SIZE_IMAGE^2 image."""
  model = create_model(model_config(arch, conv_impl="xla").model)
  params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  flops = harness.xla_forward_flops(model, SIZE_IMAGE, params)
  return {
    "section": "sizes",
    "model": label,
    "class": type(model).__name__,
    "parameters": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)),
    "image": f"{SIZE_IMAGE}x{SIZE_IMAGE}",
    "xla_gflop": None if flops is None else flops / 1e9,
  }


# ----------------------------------------------------------------------------- report


def _row_line(row):
  keys = [
    k
    for k in (
      "model",
      "parameters",
      "crop",
      "batch",
      "image",
      "tiles",
      "variant",
      "images_per_s",
      "ms_per_mp",
      "peak_memory_gb",
      "xla_gflop",
      "skipped",
    )
    if k in row
  ]
  return "  ".join(f"{k}={fmt(row[k])}" for k in keys)


def _case(row: dict):
  """What a train or inference row is compared on; sizes rows have no speed."""
  if "skipped" in row or row["section"] == "sizes":
    return None
  keys = ("model", "crop", "batch") if row["section"] == "train" else ("model", "image", "tiles")
  return (row["section"],) + tuple(row.get(k) for k in keys)


def _seconds(row: dict) -> float | None:
  return row.get("step_s", row.get("call_s"))


def add_ratios(rows: list[dict]) -> None:
  """Each row's speed over PyTorch eager float32 on the same case
  (``harness.SPEED_OVER_TORCH``); achieved GFLOP/s and, on a GPU of known peak, the
  fraction of its dense bf16 peak."""
  harness.add_speed_over_torch(rows, _case, lambda r: r["variant"] == "torch", _seconds)
  peak = harness.bf16_peak()
  for row in rows:
    if _case(row) is not None and row.get("xla_gflop"):
      row["gflop_per_s"] = row["xla_gflop"] / _seconds(row)
      if peak:
        row["fraction_of_bf16_peak"] = row["xla_gflop"] * 1e9 / _seconds(row) / peak


RATIO = harness.SPEED_OVER_TORCH
SIZE_COLUMNS = (
  ("model", "model"),
  ("class", "class"),
  ("parameters", "parameters"),
  ("image", "image"),
  ("XLA GFLOP (forward)", "xla_gflop"),
)
TRAIN_COLUMNS = (
  ("model", "model"),
  ("crop", "crop"),
  ("batch", "batch"),
  ("variant", "variant"),
  ("images/s", "images_per_s"),
  ("vs PyTorch eager", RATIO),
  ("peak memory GB", "peak_memory_gb"),
  ("XLA GFLOP/step", "xla_gflop"),
  ("GFLOP/s", "gflop_per_s"),
)
INFERENCE_COLUMNS = (
  ("model", "model"),
  ("image", "image"),
  ("tiles", "tiles"),
  ("variant", "variant"),
  ("ms per MP", "ms_per_mp"),
  ("vs PyTorch eager", RATIO),
  ("max abs diff", "max_abs_diff"),
  ("peak memory GB", "peak_memory_gb"),
  ("XLA GFLOP", "xla_gflop"),
  ("GFLOP/s", "gflop_per_s"),
)


def _cells(row: dict, columns) -> list[str]:
  """A row's cells; a skipped row says why in its first measured column."""
  cells = []
  for i, (_, key) in enumerate(columns):
    if i == 4 and "skipped" in row:
      cells.append(f"skipped: {row['skipped']}")
    elif key == RATIO and row.get(key):
      cells.append(fmt(row[key]) + "×")
    elif key == "parameters":
      cells.append(f"{row[key]:,}")
    else:
      cells.append(fmt(row.get(key), 2 if key == "max_abs_diff" else 3))
  return cells


def markdown(rows: list[dict], header: str) -> str:
  lines = [f"Machine: {header}", ""]
  for section, columns in (
    ("sizes", SIZE_COLUMNS),
    ("train", TRAIN_COLUMNS),
    ("inference", INFERENCE_COLUMNS),
  ):
    section_rows = [r for r in rows if r["section"] == section]
    if section_rows:
      lines += harness.markdown_table(
        [title for title, _ in columns], [_cells(r, columns) for r in section_rows]
      ) + [""]
  if any("fraction_of_bf16_peak" in r for r in rows):
    lines += [
      "Fraction of the GPU's dense bf16 peak: "
      + ", ".join(
        f"{r['model']} {r.get('crop', r.get('image'))} {r['variant']}: "
        f"{100 * r['fraction_of_bf16_peak']:.1f} %"
        for r in rows
        if "fraction_of_bf16_peak" in r
      )
    ]
  return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--models",
    default="demo,paper",
    help="comma-separated: paper, demo, SxBxF, or one of "
    f"{', '.join(harness.TRANSFORMER_MODELS)} (JAX rows only)",
  )
  parser.add_argument("--crops", default="96,240")
  parser.add_argument("--batches", default="2,8")
  parser.add_argument("--sections", default="sizes,train,inference")
  parser.add_argument(
    "--train_variants", default="jax,jax_remat,jax_bf16,torch,torch_bf16,torch_compile"
  )
  parser.add_argument(
    "--inference_variants",
    default="jax,jax_bf16,torch,onnxruntime",
    help="onnxruntime: the network exported to ONNX (jax2onnx), run by "
    "ONNX Runtime through nasnet_jax.inference.OnnxDerainer",
  )
  parser.add_argument(
    "--image",
    default="1024x768",
    help="WxH of the inference image (the paper net: see --paper_image)",
  )
  parser.add_argument(
    "--paper_image",
    default="512x384",
    help="WxH for the inference of the paper net (12 TFLOP per "
    "megapixel) and of ddsa and dual_stage",
  )
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument(
    "--paper_repeats",
    type=int,
    default=1,
    help="repeats for the paper net, ddsa and dual_stage (minutes per call on a CPU)",
  )
  parser.add_argument(
    "--memory_limit_gb",
    type=float,
    default=None,
    help="skip a JAX train row whose XLA plan exceeds this (default: 80%% "
    "of this machine's RAM on CPU, none on GPU)",
  )
  parser.add_argument(
    "--no_check",
    action="store_true",
    help="skip the check that both frameworks give the same losses",
  )
  parser.add_argument("--json", default=None, help="write the rows here")
  parser.add_argument("--markdown", default=None, help="write the tables here")
  args = parser.parse_args(argv)

  try:
    torch = harness.import_torch()
  except ImportError:
    raise SystemExit(
      "benchmarks/run.py needs PyTorch as the yardstick: pip install -e '.[test]' (torch==2.13.0)"
    ) from None
  torch.manual_seed(0)
  memory_limit = args.memory_limit_gb * 2**30 if args.memory_limit_gb else None
  if memory_limit is None and jax.default_backend() == "cpu":
    memory_limit = 0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  models = [parse_model(m) for m in args.models.split(",") if m]
  sections = set(args.sections.split(","))
  header = harness.machine_line(harness.machine(torch=True))
  print(header, flush=True)
  nasnets = [arch for _, arch in models if is_nasnet(arch)]
  if not args.no_check and nasnets and {"train", "inference"} & sections:
    pairs = check_same_step((1, 2, min(nasnets[0][2], 16)))
    print(f"same step check (JAX, PyTorch losses): {pairs}", flush=True)
  rows = []
  if "sizes" in sections:
    named = [parse_model(m) for m in list(NAMED_MODELS) + list(harness.TRANSFORMER_MODELS)]
    for label, arch in named + [m for m in models if m not in named]:
      _emit(rows, bench_sizes(label, arch))
  for label, arch in models:
    big = arch in (NAMED_MODELS["paper"], "ddsa", "dual_stage")
    repeats = args.paper_repeats if big else args.repeats
    # Only NASNet has a PyTorch twin (nasnet_jax/torch_nasnet.py).
    keep = lambda variants: [
      v
      for v in variants.split(",")  # noqa: E731
      if is_nasnet(arch) or v.startswith("jax")
    ]
    # (ONNX: NASNet only; the transformers' padding does not convert, docs/onnx.md.)
    if "train" in sections:
      for crop in (int(c) for c in args.crops.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
          rows += bench_train(
            label, arch, crop, batch, repeats, keep(args.train_variants), memory_limit
          )
    if "inference" in sections:
      image = args.paper_image if big else args.image
      w, h = (int(v) for v in image.split("x"))
      rows += bench_inference(
        label, arch, (h, w), args.tile, repeats, keep(args.inference_variants)
      )
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
