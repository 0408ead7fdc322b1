"""The evaluation the training loop runs every ``eval_every_steps``: scores and strips."""

from __future__ import annotations

import os

import jax
import numpy as np

from nasnet_jax import evaluation, evaluation_report, image_io
from nasnet_jax.data import pipeline


def sample_strip(example, derained) -> np.ndarray:
  """rainy | derained | clean side by side, uint8."""
  return np.concatenate([example["rainy"], derained, example["clean"]], axis=1)


def evaluate_during_training(config, model, params, eval_source, workdir, step) -> dict[str, float]:
  """Scores the held-out split (its images split over all devices and hosts); writes
  sample strips of host 0's images; returns flat summary metrics."""
  examples = pipeline.eval_examples(eval_source, config.eval.max_images or None)
  strips = {}  # by image index: devices' threads finish in any order

  def keep_strip(i, ex, derained):
    if i < config.eval.num_sample_images:
      strips[i] = sample_strip(ex, derained)

  rows = evaluation.evaluate_model(
    model,
    params,
    examples,
    tuple(config.eval.protocols),
    on_image=keep_strip,
    options=evaluation.inference_options(config.eval),
  )
  summary = evaluation_report.summarize(rows)
  if strips and jax.process_index() == 0:
    ordered = [strips[i] for i in sorted(strips)]
    width = max(s.shape[1] for s in ordered)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in ordered]
    image_io.write_png(
      os.path.join(workdir, "samples", f"step_{step:08d}.png"), np.concatenate(padded, axis=0)
    )
  flat = {
    f"eval/{group}/{key}": value
    for group, entry in summary.items()
    for key, value in entry.items()
    if key != "count"
  }
  headline = config.eval.protocols[0]  # plain "psnr"/"ssim" use the first protocol
  main_group = summary.get("all") or next(iter(summary.values()))
  for name in ("psnr", "ssim", "input_psnr", "input_ssim"):
    flat[name] = main_group.get(f"{name}_{headline}", float("nan"))
  flat["images"] = len(rows)
  flat["of_images"] = len(eval_source)
  flat["protocol"] = headline
  return flat
