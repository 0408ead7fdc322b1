"""The train step, data parallelism, checkpoints, resume, and the whole loop end to end."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nasnet_jax
from nasnet_jax import image_io, train_lib
from tests.conftest import ROOT, config_flags_for, run_script, tiny_config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def train_losses(workdir):
  return {m["step"]: m["loss"] for m in read_metrics(workdir) if "loss" in m}


def test_one_step_lowers_the_loss():
  config = tiny_config(None)
  training = train_lib.build_training(config)
  state = training.init_state()
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
  rainy = np.clip(clean.astype(int) + (rng.uniform(size=clean.shape) < 0.1) * 120, 0, 255).astype(
    np.uint8
  )
  batch = training.place_batch({"rainy": rainy, "clean": clean})
  state, first = training.step(state, batch)  # the state is donated
  assert int(state.step) == 1
  state, second = training.step(state, batch)
  assert int(state.step) == 2
  assert float(second["loss"]) < float(first["loss"])
  assert set(first) == {"loss", "l1", "ssim", "grad_norm"}


DEVICE_SCRIPT = textwrap.dedent("""
    import sys, jax, jax.numpy as jnp, numpy as np
    from nasnet_jax import train_lib
    from tests.conftest import tiny_config
    config = tiny_config(None, **{"data.synthetic_rain_fraction": 0.5,
                                 "data.synthetic_rain_type": "streak"})
    training = train_lib.build_training(config)
    state = training.init_state()
    rng = np.random.default_rng(0)
    for _ in range(2):
      local = {k: rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8) for k in ("rainy", "clean")}
      state, metrics = training.step(state, training.place_batch(local))
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state.params))])
    np.save(sys.argv[1], flat)
    print("devices", jax.device_count(), "loss", float(metrics["loss"]))
""")


def test_one_and_four_devices_give_the_same_update(tmp_path):
  outputs = {}
  for n in (1, 4):
    out = tmp_path / f"params_{n}.npy"
    proc = run_script(
      ["-c", DEVICE_SCRIPT, str(out)],
      env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"},
    )
    assert f"devices {n}" in proc.stdout
    outputs[n] = np.load(out)
  np.testing.assert_allclose(outputs[1], outputs[4], rtol=1e-4, atol=1e-6)


def test_batch_not_divisible_by_devices_is_a_clear_error(tiny_data_dir, tmp_path):
  proc = run_script(
    ["train.py", f"--workdir={tmp_path}", "--cpu_devices=4"]
    + config_flags_for(tiny_data_dir, batch_size=6),
    check=False,
  )
  assert proc.returncode == 1
  assert "config.batch_size=6 does not divide over 4 devices" in proc.stderr


def test_bad_synthetic_rain_weights_are_a_clear_error(tiny_data_dir, tmp_path):
  proc = run_script(
    ["train.py", f"--workdir={tmp_path}"]
    + config_flags_for(tiny_data_dir)
    + ["--config.data.synthetic_rain_weights=(1.0, 1.0)"],
    check=False,
  )
  assert proc.returncode == 1
  assert "config.data.synthetic_rain_weights" in proc.stderr
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


@pytest.mark.parametrize(
  "flag, status, message",
  [
    (
      "--config.data.crop_sise=64",
      2,
      "error: --config.data.crop_sise: the config has no "
      "field 'crop_sise'; did you mean --config.data.crop_size?",
    ),
    ("--config.learnin_rate=1e-3", 2, "did you mean --config.learning_rate?"),
    ("--config.learning_rate=abc", 2, "error: flag --config.learning_rate=abc"),
    ("--config.learning_rate=-1", 1, "error: config.learning_rate=-1.0 must be > 0"),
    ("--config.keep_checkpoints=0", 1, "error: config.keep_checkpoints=0 must be >= 1"),
  ],
)
def test_a_bad_setting_is_one_line_and_writes_nothing(tmp_path, flag, status, message):
  workdir = tmp_path / "run"
  proc = run_script(
    ["train.py", f"--workdir={workdir}", "--config=configs/synthetic.py", flag], check=False
  )
  assert proc.returncode == status, proc.stderr
  assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
  assert not workdir.exists()


@pytest.fixture(scope="module")
def trained(tiny_data_dir, tmp_path_factory):
  """One uninterrupted tiny run: 6 steps, checkpoints at 3 and 6, eval at 6; half of
  each batch re-rendered on device (streaks: "mixed" compiles three renderers)."""
  workdir = str(tmp_path_factory.mktemp("run"))
  config = tiny_config(
    tiny_data_dir, **{"data.synthetic_rain_fraction": 0.5, "data.synthetic_rain_type": "streak"}
  )
  state = train_lib.train_and_evaluate(config, workdir)
  return workdir, config, state


def test_end_to_end_run_writes_everything(trained):
  workdir, _, state = trained
  assert int(state.step) == 6
  metrics = read_metrics(workdir)
  assert [m["step"] for m in metrics if "loss" in m] == [2, 4, 6]
  evals = [m for m in metrics if "psnr" in m]
  assert len(evals) == 1 and evals[0]["step"] == 6 and "ssim" in evals[0]
  assert "eval/streak/psnr_y8" in evals[0] and "input_psnr" in evals[0]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  strip = image_io.read_image(os.path.join(workdir, "samples", "step_00000006.png"))
  assert strip.shape == (2 * 40, 3 * 40, 3)  # 2 images: rainy | derained | clean


def test_resume_continues_exactly(trained, tmp_path):
  workdir, config, state = trained
  copy = str(tmp_path / "resumed")
  shutil.copytree(workdir, copy)
  shutil.rmtree(os.path.join(copy, "checkpoints", "6"))  # as if killed after step 3
  resumed = train_lib.train_and_evaluate(config, copy)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert train_losses(copy) == pytest.approx(train_losses(workdir), rel=1e-6)
  # Log lines past the restored step were moved aside, not duplicated or lost.
  assert [m["step"] for m in read_metrics(copy) if "loss" in m] == [2, 4, 6]
  assert os.path.exists(os.path.join(copy, "metrics.jsonl.superseded"))


def test_truncated_checkpoint_falls_back_to_the_previous_one(trained, tmp_path, capsys):
  workdir, config, state = trained
  copy = str(tmp_path / "truncated")
  shutil.copytree(workdir, copy)
  for path in glob.glob(os.path.join(copy, "checkpoints", "6", "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "r+b") as f:
        f.truncate(max(0, os.path.getsize(path) // 3))
  resumed = train_lib.train_and_evaluate(config, copy)
  out = capsys.readouterr().out
  assert "checkpoint" in out and "unreadable" in out and "falling back" in out
  assert os.path.isdir(os.path.join(copy, "checkpoints_unreadable", "6"))  # kept
  assert int(resumed.step) == 6
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path):
  workdir, config, _ = trained
  copy = str(tmp_path / "other")
  shutil.copytree(workdir, copy)
  other = tiny_config(config.data.data_dir, **{"model.features": 12})
  with pytest.raises(
    ValueError,
    match=r"another architecture \(features: 8 in checkpoint "
    r"vs 12 in config\); use a new --workdir",
  ):
    train_lib.train_and_evaluate(other, copy)
  assert sorted(os.listdir(os.path.join(copy, "checkpoints"))) == ["3", "6"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data_dir, tmp_path):
  config = tiny_config(
    tiny_data_dir, learning_rate=1e12, total_steps=12, checkpoint_every_steps=1, log_every_steps=1
  )
  with pytest.raises(train_lib.NonFiniteLossError, match="NaN/inf"):
    train_lib.train_and_evaluate(config, str(tmp_path))
  steps = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints"))
  assert steps and steps[-1] < 12
  model, params = nasnet_jax.restore(str(tmp_path))
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(params))


def test_killed_process_resumes_on_the_same_loss_curve(tiny_data_dir, tmp_path):
  flags = config_flags_for(
    tiny_data_dir,
    total_steps=24,
    checkpoint_every_steps=4,
    log_every_steps=2,
    eval_every_steps=1000,
  )
  straight = tmp_path / "straight"
  run_script(["train.py", f"--workdir={straight}"] + flags)
  killed = tmp_path / "killed"
  # Killed once its first checkpoint is there, mid-run; a run that finished first (a very
  # fast machine) is started again rather than the test skipped.
  for _ in range(3):
    shutil.rmtree(killed, ignore_errors=True)
    proc = subprocess.Popen(
      [sys.executable, "train.py", f"--workdir={killed}"] + flags,
      cwd=ROOT,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      done = [
        d for d in glob.glob(str(killed / "checkpoints" / "*")) if os.path.basename(d).isdigit()
      ]
      if done:
        break
      time.sleep(0.02)
    if proc.poll() is None:
      break
  else:
    pytest.fail("three runs finished before they could be killed")
  assert glob.glob(str(killed / "checkpoints" / "[0-9]*")), "no checkpoint in 300 s"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  run_script(["train.py", f"--workdir={killed}"] + flags)
  assert train_losses(killed) == pytest.approx(train_losses(straight), rel=1e-5)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_data_dir, tmp_path):
  flags = config_flags_for(
    tiny_data_dir,
    total_steps=100000,
    checkpoint_every_steps=100000,
    log_every_steps=1,
    eval_every_steps=100000,
  )
  proc = subprocess.Popen(
    [sys.executable, "train.py", f"--workdir={tmp_path}"] + flags,
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  deadline = time.time() + 300
  while time.time() < deadline:
    if os.path.exists(tmp_path / "metrics.jsonl") and os.path.getsize(tmp_path / "metrics.jsonl"):
      break
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  assert "SIGTERM received" in out and "Stopped at step" in out
  assert "Exception ignored" not in out and "Traceback" not in out, out[-3000:]
  steps = [int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()]
  assert len(steps) == 1 and steps[0] >= 1, (os.listdir(tmp_path / "checkpoints"), out[-3000:])


def test_evaluate_cli_scores_the_latest_checkpoint(trained, tmp_path):
  workdir, config, _ = trained
  out_dir = tmp_path / "scores"
  proc = run_script(
    [
      "evaluate.py",
      f"--workdir={workdir}",
      f"--output_dir={out_dir}",
      "--save_images",
      "--protocols=y8,rgb",
    ]
    + config_flags_for(config.data.data_dir)
  )
  assert "input PSNR" in proc.stdout and "streak" in proc.stdout
  summary = json.loads((out_dir / "summary.json").read_text())["summary"]
  # 11 test images: 6 of the training renderer, 4 held-out, 1 clean (left out of "all").
  assert summary["all"]["count"] == 10 and summary["clean"]["count"] == 1
  assert {"psnr_y8", "input_psnr_y8", "ssim_rgb", "input_ssim_rgb"} <= set(summary["all"])
  assert len(list((out_dir / "images").glob("*.png"))) == 11
  assert (out_dir / "per_image.csv").read_text().count("\n") == 12
  # The same with exact tiles, and with the x8 ensemble.
  report = {}
  for name, flags in (
    ("tiled", ["--config.eval.tile=16"]),
    ("ensemble", ["--config.eval.ensemble=True"]),
  ):
    run_script(
      ["evaluate.py", f"--workdir={workdir}", f"--output_dir={tmp_path / name}", "--protocols=y8"]
      + config_flags_for(config.data.data_dir)
      + flags
    )
    report[name] = json.loads((tmp_path / name / "summary.json").read_text())
  assert report["tiled"]["inference"]["tile"] == 16
  assert report["ensemble"]["inference"]["ensemble"] is True
  assert report["tiled"]["summary"]["all"]["psnr_y8"] == pytest.approx(
    summary["all"]["psnr_y8"], abs=1e-3
  )
  assert report["ensemble"]["summary"]["all"]["psnr_y8"] != summary["all"]["psnr_y8"]


def test_library_restore_and_derain(trained):
  workdir, _, state = trained
  model, params = nasnet_jax.restore(workdir)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  image = np.random.default_rng(0).integers(0, 256, (37, 51, 3), dtype=np.uint8)
  out = nasnet_jax.derain(model, params, image)
  assert out.shape == image.shape and out.dtype == np.uint8
  # Same as applying the network directly (NASNet has no padding dependence inside).
  direct = np.asarray(model.apply({"params": params}, image[None] / 255.0))[0]
  np.testing.assert_allclose(
    out[:20, :30] / 255.0, np.clip(direct, 0, 1)[:20, :30], atol=1 / 255 + 1e-6
  )
  as_float = nasnet_jax.derain(model, params, image.astype(np.float32) / 255.0)
  assert as_float.dtype == np.float32 and as_float.shape == image.shape
  # A single step folder works too.
  model2, _ = nasnet_jax.restore(os.path.join(workdir, "checkpoints", "3"))
  assert model2 == model


def test_checkpoints_move_between_device_counts(tiny_data_dir, tmp_path):
  """Trained over 2 CPU devices, resumed on 1, restored for inference on 1."""
  workdir = str(tmp_path / "run")
  proc = run_script(
    ["train.py", f"--workdir={workdir}", "--cpu_devices=2"]
    + config_flags_for(tiny_data_dir, total_steps=4, eval_every_steps=0)
  )
  assert "2 device(s)" in proc.stdout
  proc = run_script(
    ["train.py", f"--workdir={workdir}"]
    + config_flags_for(tiny_data_dir, total_steps=6, eval_every_steps=0)
  )
  assert "Resumed from" in proc.stdout and "1 device(s)" in proc.stdout
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "6"
  model, params = nasnet_jax.restore(os.path.join(workdir, "checkpoints", "4"))
  out = nasnet_jax.derain(model, params, np.zeros((20, 20, 3), np.uint8))
  assert out.shape == (20, 20, 3)


def test_export_of_a_training_run_holds_its_parameters(trained, tmp_path):
  workdir, _, state = trained
  proc = run_script(
    ["-m", "nasnet_jax.export", f"--workdir={workdir}", f"--output={tmp_path / 'export'}"]
  )
  assert "exported" in proc.stdout
  model, params = nasnet_jax.restore(str(tmp_path / "export"))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert jax.tree.structure(params) == jax.tree.structure(state.params)
  items = [p.name for p in (tmp_path / "export" / "checkpoint").iterdir() if p.is_dir()]
  assert sorted(items) == ["model", "params"]  # no optimizer state, step or data state


class _TwoStageToy(nn.Module):
  """Sows an intermediate image into "stage_outputs", as DualStageNet does."""

  @nn.compact
  def __call__(self, x, valid=None):
    first = x + self.param("a", nn.initializers.constant(0.1), (3,))
    self.sow("stage_outputs", "stage1", first)
    return first + self.param("b", nn.initializers.constant(0.2), (3,))


def test_sown_stage_outputs_add_their_weighted_loss():
  model = _TwoStageToy()
  params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  state = train_lib.TrainState.create(
    apply_fn=model.apply, params=params, tx=optax.sgd(0.1), rng=jax.random.PRNGKey(0)
  )
  rng = np.random.default_rng(0)
  batch = {
    "rainy": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
    "clean": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
  }
  rainy, clean = (jnp.asarray(batch[k], jnp.float32) / 255 for k in ("rainy", "clean"))
  l1 = lambda p: float(jnp.mean(jnp.abs(p - clean)))  # noqa: E731
  for weight in (0.0, 0.5):
    _, metrics = train_lib.train_step(state, batch, loss_name="l1", intermediate_loss_weight=weight)
    np.testing.assert_allclose(
      metrics["loss"], l1(rainy + 0.3) + weight * l1(rainy + 0.1), rtol=1e-5
    )
    np.testing.assert_allclose(metrics["l1"], l1(rainy + 0.3), rtol=1e-5)


def test_build_training_binds_the_config_once_and_initialises_nothing():
  config = tiny_config(None)
  training = train_lib.build_training(config)
  # The abstract state has the real one's structure, shapes and shardings.
  state = training.init_state()
  assert jax.tree.structure(training.abstract_state) == jax.tree.structure(state)
  for abstract, real in zip(jax.tree.leaves(training.abstract_state), jax.tree.leaves(state)):
    assert isinstance(abstract, jax.ShapeDtypeStruct)
    assert (abstract.shape, abstract.dtype) == (real.shape, real.dtype)
    assert abstract.sharding == real.sharding
  np.testing.assert_allclose(
    training.schedule(config.total_steps), config.get("end_learning_rate", 0.0), atol=1e-9
  )


def test_the_finite_check_before_a_save_is_one_reduction():
  params = {"a": jnp.ones((2, 3)), "b": {"c": jnp.zeros(4)}}
  assert bool(train_lib._all_finite(params))
  params["b"]["c"] = params["b"]["c"].at[1].set(jnp.inf)
  assert not bool(train_lib._all_finite(params))
  # One program whose result is a single scalar: one host sync per save, not one per leaf.
  assert train_lib._all_finite(params).shape == ()
