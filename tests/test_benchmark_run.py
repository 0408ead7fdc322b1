"""benchmarks/run.py at toy size: both frameworks run the same network and step, every
row is measured, and XLA's FLOP count matches the network's arithmetic."""

import json

import jax
import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks import harness, run  # noqa: E402  pylint: disable=g-import-not-at-top
from nasnet_jax.inference import bucket_size  # noqa: E402
from nasnet_jax.models import NASNet, init_params  # noqa: E402


def test_run_measures_every_row_side_by_side(tmp_path, capsys):
  out = tmp_path / "rows.json"
  table = tmp_path / "table.md"
  assert (
    run.main(
      [
        "--models=1x1x8",
        "--sections=train,inference",
        "--crops=16",
        "--batches=2",
        "--image=40x24",
        "--tile=16",
        "--repeats=1",
        "--train_variants=jax,jax_remat,torch",
        "--inference_variants=jax,torch,onnxruntime",
        f"--json={out}",
        f"--markdown={table}",
      ]
    )
    == 0
  )
  rows = json.loads(out.read_text())["rows"]
  assert "same step check" in capsys.readouterr().out
  train = [r for r in rows if r["section"] == "train"]
  infer = [r for r in rows if r["section"] == "inference"]
  assert [r["variant"] for r in train] == ["jax", "jax_remat", "torch"]
  assert len(infer) == 6 and {r["tiles"] for r in infer} == {"whole", "16 + 9 overlap"}
  assert {r["variant"] for r in infer} == {"jax", "torch", "onnxruntime"}
  for r in rows:
    assert "skipped" not in r, r
    assert r.get("images_per_s", r.get("ms_per_mp")) > 0
    assert r["speed_over_torch"] > 0
  assert all(r["max_abs_diff"] < 1e-4 for r in infer)  # same weights, same output
  # (ONNX Runtime too: the network exported by jax2onnx.)
  # XLA's count for the forward pass is the convolutions' multiply-adds (2 FLOPs per
  # weight per pixel) plus the elementwise work: within a third of that.
  model = NASNet(stages=1, blocks=1, features=8)
  params = model.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))["params"]
  weights = sum(
    x.size
    for path, x in jax.tree_util.tree_leaves_with_path(params)
    if "kernel" in jax.tree_util.keystr(path)
  )
  whole = next(r for r in infer if r["variant"] == "jax" and r["tiles"] == "whole")
  analytic = 2 * weights * bucket_size(24) * bucket_size(40) / 1e9  # the padded image
  assert analytic <= whole["xla_gflop"] <= 1.34 * analytic
  jax_train = next(r for r in train if r["variant"] == "jax")
  assert jax_train["xla_gflop"] > 2 * 2 * weights * 16 * 16 * 2 / 1e9  # fwd + bwd
  text = table.read_text()
  assert "| 1x1x8 | 16 | 2 | torch |" in text and "Machine: " in text


def test_same_step_check_compares_losses():
  pairs = run.check_same_step((1, 1, 4), crop=16, batch=2, steps=2)
  assert len(pairs) == 2
  for j, t in pairs:
    assert abs(j - t) < 1e-3
  assert pairs[1][0] != pairs[0][0]  # the optimizer moved


def test_sizes_give_parameters_and_forward_flops_at_256():
  nasnet = run.bench_sizes(*run.parse_model("1x1x8"))
  model = NASNet(stages=1, blocks=1, features=8)
  params = init_params(model, jax.random.key(0))
  assert nasnet["parameters"] == sum(x.size for x in jax.tree.leaves(params))
  weights = sum(
    x.size
    for path, x in jax.tree_util.tree_leaves_with_path(params)
    if "kernel" in jax.tree_util.keystr(path)
  )
  textbook = 2 * weights * 256 * 256 / 1e9
  assert textbook <= nasnet["xla_gflop"] <= 1.34 * textbook
  dual = run.bench_sizes(*run.parse_model("dual_stage_demo"))
  assert dual["class"] == "DualStageNet" and dual["parameters"] == 23_056
  # Beyond its weights' multiply-adds: the window and group attention's products.
  assert dual["xla_gflop"] > 2 * 23_056 * 256 * 256 / 1e9
  assert run.parse_model("ddsa") == ("ddsa", "ddsa")


def test_bad_model_spec_is_a_one_line_error():
  with pytest.raises(SystemExit, match="neither one of"):
    run.parse_model("big")


def test_transformer_rows_train_with_their_own_loss_and_optimizer():
  """The benchmark's JAX step is the training loop's (train_lib.build_training): DDSA's
  rows take its L1 and AdamW, not NASNet's L1 + (1 - SSIM)."""
  config = harness.model_config(
    "ddsa_demo",
    features=8,
    blocks=(1, 1),
    heads=(1, 1),
    refinement_blocks=0,
    sparse_ratios=(1 / 2,),
  )
  config.batch_size, config.data.crop_size = 2, 16
  trainer = harness.JaxTrainer(config, harness.random_batch(2, 16))
  loss = trainer.step()
  assert config.loss == "l1" and config.optimizer == "adamw"
  np.testing.assert_allclose(loss, float(trainer.metrics["l1"]), rtol=1e-6)
  assert float(trainer.metrics["ssim"]) < 0.999  # so L1 + (1 - SSIM) would differ
