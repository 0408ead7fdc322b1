"""Export: an orbax checkpoint of the parameters only, and a jax.export artifact."""

import os
import textwrap

import jax
import numpy as np
import pytest

import nasnet_jax
from nasnet_jax import export, inference
from nasnet_jax.models import create_model, init_params
from tests.conftest import run_script

MODEL_CONFIG = {
  "name": "nasnet",
  "stages": 1,
  "blocks": 2,
  "features": 8,
  "attention": "na",
  "fuse_stages": True,
  "input_normalization": "rain100l",
  "remat": False,
  "dtype": "float32",
  "conv_impl": "auto",
}


def tiny_export(directory, config=None, seed=0):
  """An export of a freshly initialised network (what a trained one looks like on disk)."""
  config = dict(config or MODEL_CONFIG)
  model = create_model(config)
  params = init_params(model, jax.random.PRNGKey(seed))
  source = os.path.join(str(directory), "source")
  export.save_params(os.path.join(source, "checkpoint"), config, params)
  return source, model, params


def test_export_restores_without_training_state_and_matches(tmp_path):
  source, model, params = tiny_export(tmp_path)
  out = export.export(source, str(tmp_path / "export"))
  assert sorted(os.listdir(out)) == ["checkpoint", "derain.jax_export", "model.json"]
  model2, params2 = nasnet_jax.restore(out)
  assert model2 == model
  jax.tree.map(np.testing.assert_array_equal, params2, params)
  # The function file names its export too; the folder is readable like any other.
  jax.tree.map(
    np.testing.assert_array_equal,
    nasnet_jax.restore(os.path.join(out, "derain.jax_export"))[1],
    params,
  )
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(out).st_mode & 0o777 == 0o777 & ~umask
  # The jax.export artifact: any batch and size, the library's output at that size.
  exported = export.load_exported(out)
  images = np.random.default_rng(0).random((2, 37, 45, 3), dtype=np.float32)
  np.testing.assert_allclose(
    np.asarray(exported.call(images)), inference.derain(model, params, images), atol=1e-5
  )


@pytest.mark.parametrize(
  "config",
  [
    {
      "name": "ddsa",
      "features": 8,
      "blocks": (1, 1),
      "heads": (1, 2),
      "refinement_blocks": 0,
      "sparse_ratios": (0.5,),
    },
    {
      "name": "dual_stage",
      "features": 8,
      "heads": 2,
      "stage1_blocks": 1,
      "stage2_blocks": 1,
      "clusters": 4,
      "group_size": 16,
      "mask_threshold": "otsu",
    },
    {"name": "prenet", "stages": 2, "blocks": 1, "features": 8},
  ],
  ids=["ddsa", "dual_stage", "prenet"],
)
def test_other_networks_export_with_symbolic_sizes(tmp_path, config):
  # The transformers pad to their level / window multiple inside the network (and
  # DualStageNet sorts and groups its pixels); PReNet's LSTM state is shaped like the
  # image. The artifact must still take any size.
  source, model, params = tiny_export(tmp_path, config)
  out = export.export(source, str(tmp_path / "export"))
  images = np.random.default_rng(0).random((1, 21, 30, 3), dtype=np.float32)
  # Derainer pads to its 32-pixel bucket, the artifact to the network's own multiple:
  # the same result up to float summation order over the extra zeros.
  np.testing.assert_allclose(
    np.asarray(export.load_exported(out).call(images)),
    inference.derain(model, params, images),
    atol=5e-5,
  )


def test_the_artifact_runs_with_jax_alone(tmp_path):
  source, model, params = tiny_export(tmp_path)
  out = export.export(source, str(tmp_path / "export"))
  images = np.random.default_rng(1).random((1, 21, 30, 3), dtype=np.float32)
  np.save(tmp_path / "in.npy", images)
  script = textwrap.dedent(f"""\
      import sys, jax, numpy as np
      with open({os.path.join(out, "derain.jax_export")!r}, "rb") as f:
        derain = jax.export.deserialize(bytearray(f.read()))
      x = np.load({str(tmp_path / "in.npy")!r})
      np.save({str(tmp_path / "out.npy")!r}, np.asarray(derain.call(x)))
      loaded = [m for m in ("flax", "nasnet_jax", "optax", "orbax") if m in sys.modules]
      assert not loaded, loaded
  """)
  run_script(["-c", script], env={"PYTHONPATH": ""})
  np.testing.assert_allclose(
    np.load(tmp_path / "out.npy"), inference.derain(model, params, images), atol=1e-5
  )


def test_export_never_writes_over_an_existing_folder(tmp_path):
  source, _, _ = tiny_export(tmp_path)
  target = tmp_path / "taken"
  target.mkdir()
  (target / "keep.txt").write_text("mine")
  proc = run_script(
    ["-m", "nasnet_jax.export", f"--workdir={source}", f"--output={target}"], check=False
  )
  assert proc.returncode == 1 and "exists" in proc.stderr
  assert os.listdir(target) == ["keep.txt"]
  proc = run_script(
    [
      "-m",
      "nasnet_jax.export",
      f"--workdir={tmp_path / 'nowhere'}",
      f"--output={tmp_path / 'new'}",
    ],
    check=False,
  )
  assert proc.returncode == 1 and "does not exist" in proc.stderr
  assert not (tmp_path / "new").exists()


def test_export_of_parameters_and_training_log_only(tmp_path):
  source, model, params = tiny_export(tmp_path)
  with pytest.raises(FileNotFoundError, match="config.json is missing"):
    export.export(source, str(tmp_path / "no_log"), platforms=(), training_log=True)
  assert not (tmp_path / "no_log").exists()
  (tmp_path / "source" / "config.json").write_text('{"total_steps": 2}')
  (tmp_path / "source" / "metrics.jsonl").write_text('{"step": 2, "loss": 0.5}\n')
  out = export.export(source, str(tmp_path / "export"), platforms=(), training_log=True)
  assert sorted(os.listdir(out)) == ["checkpoint", "config.json", "metrics.jsonl", "model.json"]
  jax.tree.map(np.testing.assert_array_equal, nasnet_jax.restore(out)[1], params)
