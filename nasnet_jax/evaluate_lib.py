"""What ``evaluate.py`` does, as a library call: a request (one field per flag of the
same name) in, the scored rows and their report out.

Three kinds of request:
  * a model (``workdir``, or ``pretrained``) on a dataset split of ``config.data``,
    against its ground truth;
  * a model on real rainy photos without ground truth (``input_dir``, or
    ``split="real_rain"`` with ``config.eval.real_rain_dir``), no-reference protocols;
  * saved outputs in ``results_dir``, against ``target_dir`` or, without one, alone.
Errors name the flag to change, since the command line is where requests come from.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from typing import Any

import jax

from nasnet_jax import evaluation, evaluation_report, hosts, metrics, storage

# The split name of a folder of real rainy photos without ground truth
# (config.eval.real_rain_dir or input_dir), scored with the no-reference protocols.
REAL_RAIN_SPLIT = "real_rain"
DEFAULT_PROTOCOLS = ("y8", "rgb")  # against ground truth, when neither flag nor config names any


@dataclasses.dataclass(frozen=True)
class EvaluationRequest:
  """What to score and where to write it; each field is evaluate.py's flag of that name.

  ``config`` is an ml_collections config (``configs/*.py``) or None; ``protocols`` None
  means the config's ``eval.protocols`` against ground truth (``DEFAULT_PROTOCOLS``
  without a config), niqe and brisque without ground truth. ``max_images`` limits the
  images a model derains (0: all); saved outputs are always scored in full.
  """

  config: Any = None
  workdir: str | None = None
  pretrained: bool = False
  split: str | None = None
  results_dir: str | None = None
  target_dir: str | None = None
  input_dir: str | None = None
  output_dir: str | None = None
  protocols: Sequence[str] | None = None
  save_images: bool = False
  max_images: int = 0


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """The outcome: one row per image, their summary per group (``evaluation_report``),
  the protocols scored and the folder the report went to."""

  rows: list[dict[str, Any]]
  summary: dict[str, dict[str, float]]
  protocols: list[str]
  output_dir: str

  def table(self) -> str:
    return evaluation_report.format_table(self.summary, self.protocols)


def choose_protocols(request: EvaluationRequest, ground_truth: bool) -> list[str]:
  """The request's protocols, or the default for it; ValueError for unknown names or for
  full-reference protocols without ground truth."""
  if request.protocols:
    protocols = list(request.protocols)
  elif not ground_truth:
    protocols = list(metrics.NO_REFERENCE_PROTOCOLS)
  elif request.config is not None:
    protocols = list(request.config.eval.protocols)
  else:
    protocols = list(DEFAULT_PROTOCOLS)
  try:
    full, _ = metrics.split_protocols(protocols)
  except ValueError as e:  # unknown names
    raise ValueError(f"--protocols: {e}") from None
  if full and not ground_truth:
    raise ValueError(
      f"--protocols={','.join(full)} compare with ground truth, which real rain has not: "
      f"pass --target_dir=GT, or use --protocols={','.join(metrics.NO_REFERENCE_PROTOCOLS)}"
    )
  return protocols


def evaluate(request: EvaluationRequest) -> Evaluation:
  """Scores what ``request`` names and writes ``per_image.csv`` and ``summary.json``
  (process 0; every process gets every row). Every process must call it."""
  if request.target_dir and not request.results_dir:
    raise ValueError("--target_dir needs --results_dir, the outputs to score against it")
  if request.max_images < 0:
    raise ValueError(f"--max_images must be >= 0 (0: all images), got {request.max_images}")
  if isinstance(request.protocols, str):
    raise ValueError(f"protocols must be a list of names, got the string {request.protocols!r}")
  if request.results_dir:
    rows, output_dir, extra, protocols = _score_folders(request)
  else:
    rows, output_dir, extra, protocols = _score_model(request)
  summary = evaluation_report.summarize(rows)
  if jax.process_index() == 0:
    evaluation_report.write_report(rows, summary, output_dir, {**extra, "protocols": protocols})
  return Evaluation(rows, summary, protocols, output_dir)


def _score_folders(request: EvaluationRequest):
  """Saved outputs in results_dir, against target_dir or without ground truth."""
  protocols = choose_protocols(request, ground_truth=bool(request.target_dir))
  output_dir = request.output_dir or request.results_dir.rstrip("/") + "_scores"
  storage.check_writable(output_dir, "--output_dir")  # a read-only disk: before scoring
  rows = evaluation.evaluate_folders(
    request.results_dir, request.target_dir, protocols, request.input_dir
  )
  extra: dict[str, Any] = {"results_dir": request.results_dir, "target_dir": request.target_dir}
  if request.input_dir:
    extra["input_dir"] = request.input_dir
  return rows, output_dir, extra, protocols


def real_rain_folder(request: EvaluationRequest, split: str | None) -> str | None:
  """The folder of real rainy photos to derain: ``input_dir``, else for ``split``
  "real_rain" the config's ``eval.real_rain_dir`` (ValueError if unset); None for a
  dataset split."""
  if request.input_dir or split != REAL_RAIN_SPLIT:
    return request.input_dir
  folder = request.config.eval.get("real_rain_dir") if request.config is not None else None
  if not folder:
    raise ValueError(
      f"--split={REAL_RAIN_SPLIT} derains the photos in config.eval.real_rain_dir: set it "
      "(--config.eval.real_rain_dir=DIR) or pass --input_dir"
    )
  return folder


def _score_model(request: EvaluationRequest):
  """The model (workdir or pretrained) on a dataset split or a folder of real photos."""
  config = request.config
  split = request.split or (config.data.eval_split if config is not None else None)
  photos = real_rain_folder(request, split)
  if not (request.workdir or request.pretrained) or (config is None and not photos):
    raise ValueError(
      "pass --config and --workdir (or --pretrained) to score a model, "
      "--workdir (or --pretrained) and --input_dir to score it on real rainy photos, "
      "--results_dir and --target_dir to score saved outputs, or --results_dir alone "
      "for saved outputs of real rain"
    )
  if request.workdir and request.pretrained:
    raise ValueError("pass either --workdir or --pretrained, not both")
  import nasnet_jax  # pylint: disable=g-import-not-at-top

  protocols = choose_protocols(request, ground_truth=not photos)
  if photos:
    split = REAL_RAIN_SPLIT
  if request.pretrained:
    model, params = nasnet_jax.pretrained()
    default_output = f"pretrained_eval_{split}"
  else:
    model, params = nasnet_jax.restore(request.workdir)
    default_output = os.path.join(request.workdir, f"eval_{split}")
  extra: dict[str, Any] = {"workdir": request.workdir or "pretrained:general", "split": split}
  if photos:
    examples = evaluation.folder_examples(photos)
    extra["input_dir"] = photos
  else:
    from nasnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top

    source = pipeline.get_data_source(
      config.data.name, split, config.data.data_dir, config.data.manual_dir
    )
    examples = pipeline.eval_examples(source)
    extra["dataset"] = config.data.name
  if request.max_images:
    examples = itertools.islice(examples, request.max_images)
  output_dir = request.output_dir or default_output
  # A read-only or full disk, said before scoring (every host writes with save_images).
  hosts.check_on_every_host(
    lambda: storage.check_writable(output_dir, "--output_dir"), "--output_dir"
  )
  options = evaluation.inference_options(config.eval if config is not None else {})
  rows = evaluation.evaluate_model(
    model,
    params,
    examples,
    protocols,
    output_dir=os.path.join(output_dir, "images") if request.save_images else None,
    options=options,
  )
  extra["inference"] = options
  return rows, output_dir, extra, protocols
