"""The report of an evaluation: per-image rows summarised per rain type, a plain-text
table of input vs output per protocol, and ``per_image.csv`` / ``summary.json``.

Rows are what ``evaluation.evaluate_model`` and ``evaluation.evaluate_folders`` return:
{"id", optionally "rain_type", then a float per score}.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasnet_jax import metrics

CLEAN = "clean"  # rain_type of rain-free examples (input == target)
HELDOUT_PREFIX = "heldout_"  # rain_type prefix of the held-out renderer's examples


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
  """Mean of every numeric column, overall and per ``rain_type``.

  Groups: ``all`` (every rainy row: rain-free ``clean`` rows are left out, since their
  input is the target), then, when the rows hold both, ``own`` (the training renderer's
  types) and ``heldout`` (types starting ``heldout_``), then each rain type in order of
  appearance, ``clean`` last.
  """
  typed = [r for r in rows if "rain_type" in r]
  rainy = [r for r in rows if r.get("rain_type") != CLEAN]
  groups = collections.OrderedDict([("all", rainy)])
  heldout = [r for r in typed if r["rain_type"].startswith(HELDOUT_PREFIX)]
  own = [
    r for r in typed if r["rain_type"] != CLEAN and not r["rain_type"].startswith(HELDOUT_PREFIX)
  ]
  if heldout and own:
    groups["own"], groups["heldout"] = own, heldout
  for row in sorted(typed, key=lambda r: r["rain_type"] == CLEAN):
    groups.setdefault(row["rain_type"], []).append(row)
  summary = {}
  for name, group in groups.items():
    if not group and name == "all" and rows:
      continue
    keys = [k for k in group[0] if isinstance(group[0][k], float)] if group else []
    entry = {"count": len(group)}
    for k in keys:
      values = [r[k] for r in group if math.isfinite(r[k])]
      entry[k] = float(np.mean(values)) if values else float("nan")
    summary[name] = entry
  return summary


def format_table(summary: Mapping[str, Mapping[str, float]], protocols: Sequence[str]) -> str:
  """A plain-text table: one line per group and protocol, input vs output.

  The ``clean`` group's input equals its target, so it shows only how close the output
  stays to the input (higher is better; 40 dB is about one grey level of error). The
  no-reference protocols (lower is better) get a block of their own below.
  """
  full, no_reference = metrics.split_protocols(protocols)
  finite = lambda v: v is not None and math.isfinite(v)
  lines = []
  if full:
    lines += _full_reference_lines(summary, full, finite)
  if no_reference:
    if lines:
      lines.append("")
    lines.append(
      f"{'group':<22} {'n':>4} {'protocol':<10} {'input':>10} {'output':>8} {'change':>7}"
      "   (no reference: lower is better)"
    )
    for group, entry in summary.items():
      for p in no_reference:
        if p not in entry:
          continue
        inp, out = entry.get(f"input_{p}"), entry[p]
        change = f"{out - inp:+7.2f}" if finite(inp) and finite(out) else f"{'-':>7}"
        inp_s = f"{inp:10.2f}" if finite(inp) else f"{'-':>10}"
        out_s = f"{out:8.2f}" if finite(out) else f"{'-':>8}"
        lines.append(f"{group:<22} {entry['count']:>4} {p:<10} {inp_s} {out_s} {change}")
  return "\n".join(lines)


def _full_reference_lines(summary, protocols, finite) -> list[str]:
  lines = [
    f"{'group':<22} {'n':>4} {'protocol':<10} {'input PSNR':>10} {'PSNR':>8} "
    f"{'gain':>7} {'input SSIM':>10} {'SSIM':>7}"
  ]
  for group, entry in summary.items():
    for p in protocols:
      if f"psnr_{p}" not in entry:
        continue
      inp = entry.get(f"input_psnr_{p}")
      out = entry[f"psnr_{p}"]
      gain = f"{out - inp:+7.2f}" if finite(inp) else f"{'-':>7}"
      inp_s = f"{inp:10.2f}" if finite(inp) else f"{'-':>10}"
      inp_ssim = entry.get(f"input_ssim_{p}")
      inp_ssim_s = f"{inp_ssim:10.4f}" if finite(inp_ssim) else f"{'-':>10}"
      lines.append(
        f"{group:<22} {entry['count']:>4} {p:<10} {inp_s} {out:8.2f} {gain} "
        f"{inp_ssim_s} {entry[f'ssim_{p}']:7.4f}"
      )
  return lines


def write_report(
  rows: Sequence[Mapping[str, Any]],
  summary: Mapping[str, Any],
  output_dir: str,
  extra: Mapping[str, Any] | None = None,
) -> None:
  """Writes ``per_image.csv`` and ``summary.json`` into ``output_dir`` (atomically)."""
  os.makedirs(output_dir, exist_ok=True)
  if rows:
    fields = list(rows[0].keys())
    tmp = os.path.join(output_dir, "per_image.csv.tmp")
    with open(tmp, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=fields)
      writer.writeheader()
      writer.writerows(rows)
    os.replace(tmp, os.path.join(output_dir, "per_image.csv"))
  tmp = os.path.join(output_dir, "summary.json.tmp")
  with open(tmp, "w") as f:
    json.dump({**(extra or {}), "summary": summary}, f, indent=2)
  os.replace(tmp, os.path.join(output_dir, "summary.json"))
