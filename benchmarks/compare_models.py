"""Several deraining models scored the same way, side by side: the anchor table.

  python benchmarks/compare_models.py \
      --models=general=pretrained:general,prenet_rain100l=/path/to/converted_export \
      --markdown=/tmp/anchor.md --json=/tmp/anchor.json

Gains in PSNR over the rainy input per rain kind, the clean-photo score and the time per
megapixel (timed by benchmarks/harness.py). The manual: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import harness  # noqa: E402
from nasnet_jax import (  # noqa: E402
  checkpointing,
  evaluation,
  evaluation_report,
  inference,
  models,
  pretrained_models,
)
from nasnet_jax.data import heldout_rain, pipeline, synthetic_rain  # noqa: E402

# Columns: (group in evaluation_report.summarize, heading).
OWN = tuple((kind, kind) for kind in synthetic_rain.RAIN_TYPES)
HELDOUT = tuple(
  (evaluation_report.HELDOUT_PREFIX + kind, kind.replace("_", " ")) for kind in heldout_rain.KINDS
)
TIMING_SIZE = 1024


def parse_models(spec: str) -> list[tuple[str, str]]:
  """``NAME=SOURCE,...`` -> [(name, source)]; a bare ``pretrained:NAME`` names itself."""
  models = []
  for item in filter(None, (s.strip() for s in spec.split(","))):
    name, _, source = item.partition("=")
    if not source:
      if not item.startswith("pretrained:"):
        raise ValueError(
          f"--models entry {item!r}: write NAME=SOURCE (a workdir, checkpoint "
          "or export folder, or pretrained:NAME)"
        )
      name, source = item.split(":", 1)[1], item
    models.append((name, source))
  if not models:
    raise ValueError("--models is empty")
  if len({n for n, _ in models}) != len(models):
    raise ValueError(f"--models names a model twice: {[n for n, _ in models]}")
  return models


def load(source: str):
  """(model, params, model config, path) of a ``--models`` source; ``path`` is the
  folder itself (for a shipped model, its folder in the package)."""
  if source.startswith("pretrained:"):
    source = pretrained_models.pretrained_path(source.split(":", 1)[1])
  config, params = checkpointing.restore_config_and_params(source)
  return models.create_model(config), params, config, source


def seconds_per_megapixel(derainer, image: np.ndarray, repeats: int) -> float:
  """Median seconds of ``derainer(image)`` per megapixel, after one warm-up call
  (``harness.timed``)."""
  timing = harness.timed(lambda: derainer(image), repeats)
  return timing.median_s / (image.shape[0] * image.shape[1] / 1e6)


def onnx_derainer(source: str, directory: str):
  """An ``OnnxDerainer`` of ``source``, or None without the onnx extra or where the network
  cannot be expressed in ONNX."""
  try:
    from nasnet_jax import export  # pylint: disable=g-import-not-at-top

    path = export.export_onnx(source, os.path.join(directory, "model.onnx"))
    return inference.OnnxDerainer(path)
  except (ImportError, ValueError) as e:
    print(f"  no ONNX Runtime row: {str(e).splitlines()[0][:200]}")
    return None


def score_model(name, source, examples, protocol, timing_image, repeats) -> dict:
  model, params, config, path = load(source)
  start = time.perf_counter()
  rows = evaluation.evaluate_model(model, params, examples, [protocol])
  scoring_s = time.perf_counter() - start
  summary = evaluation_report.summarize(rows)
  result = {
    "name": name,
    "source": source,
    "model": config,
    "parameters": int(sum(np.size(p) for p in jax.tree.leaves(params))),
    "scoring_seconds": scoring_s,
    "summary": summary,
  }
  result["xla_s_per_mp"] = seconds_per_megapixel(
    inference.Derainer(model, params), timing_image, repeats
  )
  with tempfile.TemporaryDirectory() as tmp:
    ort = onnx_derainer(path, tmp)
    result["onnxruntime_s_per_mp"] = (
      seconds_per_megapixel(ort, timing_image, repeats) if ort is not None else None
    )
  return result


def _gain(entry, protocol):
  return entry[f"psnr_{protocol}"] - entry[f"input_psnr_{protocol}"]


def markdown(
  results: list[dict], protocol: str, header: str, timing_size: int = TIMING_SIZE
) -> str:
  """The anchor table: input PSNR per kind, then each model's gain, clean PSNR, time."""
  summary0 = results[0]["summary"]
  kinds = [(g, h) for g, h in OWN + HELDOUT if g in summary0]
  columns = (
    [f"own {h}" for g, h in kinds if g in dict(OWN)]
    + ["own mean"]
    + [f"held-out {h}" for g, h in kinds if g in dict(HELDOUT)]
    + ["held-out mean"]
  )
  groups = (
    [g for g, _ in kinds if g in dict(OWN)]
    + ["own"]
    + [g for g, _ in kinds if g in dict(HELDOUT)]
    + ["heldout"]
  )
  rows = [
    ["rainy input (PSNR)", ""]
    + [f"{summary0[g][f'input_psnr_{protocol}']:.2f}" for g in groups]
    + ["(input = target)", "", ""]
  ]
  for r in results:
    s = r["summary"]
    ort = r["onnxruntime_s_per_mp"]
    rows.append(
      [r["name"], f"{r['parameters']:,}"]
      + [f"{_gain(s[g], protocol):+.2f}" for g in groups]
      + [
        f"{s['clean'][f'psnr_{protocol}']:.2f} dB",
        f"{r['xla_s_per_mp']:.2f}",
        f"{ort:.2f}" if ort is not None else "–",
      ]
    )
  lines = [header, ""] + harness.markdown_table(
    ["model", "parameters"] + columns + ["clean photos", "s/MP XLA", "s/MP ONNX Runtime"], rows
  )
  counts = ", ".join(f"{h} {summary0[g]['count']}" for g, h in kinds)
  lines += [
    "",
    f"Gains in dB over the rainy input ({protocol}); images per kind: {counts}; "
    f"clean photos {summary0['clean']['count']}. Time: one {timing_size}x"
    f"{timing_size} image, whole, float32.",
  ]
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--models",
    default="general=pretrained:general",
    help="NAME=SOURCE,... (SOURCE: workdir, checkpoint or export folder, or pretrained:NAME)",
  )
  parser.add_argument(
    "--config",
    default=os.path.join(ROOT, "configs", "synthetic.py"),
    help="config naming the dataset, split and protocol",
  )
  parser.add_argument("--max_images", type=int, default=0, help="score at most this many")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per model")
  parser.add_argument(
    "--timing_size", type=int, default=TIMING_SIZE, help="side of the square image timed"
  )
  parser.add_argument("--json", help="write the full results here")
  parser.add_argument("--markdown", help="write the table here")
  args = parser.parse_args(argv)
  spec = importlib.util.spec_from_file_location("compared_config", args.config)
  config_module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(config_module)
  config = config_module.get_config()
  protocol = config.eval.protocols[0]
  entries = parse_models(args.models)
  source = pipeline.get_data_source(
    config.data.name, config.data.eval_split, config.data.data_dir, config.data.manual_dir
  )
  examples = list(pipeline.eval_examples(source, args.max_images or None))
  first = examples[0]["clean"]
  size = args.timing_size
  timing_image = np.tile(first, (-(-size // first.shape[0]), -(-size // first.shape[1]), 1))[
    :size, :size
  ]
  results = []
  for name, model_source in entries:
    print(f"{name}: {model_source}", flush=True)
    results.append(score_model(name, model_source, examples, protocol, timing_image, args.repeats))
  header = (
    f"{config.data.name} {config.data.eval_split} split ({len(examples)} images), "
    f"{harness.machine_line(harness.machine())}"
  )
  table = markdown(results, protocol, header, size)
  print(table)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": header, "protocol": protocol, "results": results}, f, indent=1)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(table + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
