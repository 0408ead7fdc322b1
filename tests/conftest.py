"""Shared fixtures: a tiny synthetic-rain dataset built once per test session, and one
XLA compilation cache for the session."""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Most of the suite's time is XLA compiling, and many tests compile the same programs (the
# tiny train step in a dozen train.py processes, the two processes of a multi-host run).
# JAX's persistent compilation cache, in a folder new to this run, compiles each once: the
# pytest process that loads this file first (the xdist controller) names the folder in
# the environment, which its workers and every subprocess inherit, and removes it at the
# end. Programs compiled in under half a second are not kept.
_CACHE_DIR = os.path.join(tempfile.gettempdir(), f"nasnet_jax_test_xla_cache_{os.getpid()}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

from nasnet_jax.data import synthetic_rain_builder  # noqa: E402  pylint: disable=g-import-not-at-top


def pytest_sessionfinish(session):
  """The process that named the cache folder removes it."""
  del session
  if os.environ.get("JAX_COMPILATION_CACHE_DIR") == _CACHE_DIR:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


class TinyRain(synthetic_rain_builder.SyntheticRain):
  """synthetic_rain at toy size: 2 train photos (short side 48, 3 renders), 1 test photo
  (40x40: 3 types x 2 strengths, 4 held-out kinds x 1 level, 1 clean)."""

  BUILDER_CONFIGS = [
    synthetic_rain_builder.SyntheticRainConfig(name=t, rain_type=t, renders_per_image=3)
    for t in ("streak", "mixed")
  ]
  train_photos = ("astronaut", "coffee")
  test_photos = ("chelsea",)
  train_size = 48
  test_size = 40
  test_strengths = (0.3, 0.9)
  heldout_levels = (0.7,)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """A TFDS data_dir holding tiny_rain/mixed (train 6 examples, test 11), built once for
  all of pytest-xdist's workers (their temporary folders share a parent). Read it only:
  a test that damages data copies it first."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  data_dir = root / "tiny_rain_tfds"
  with open(root / "tiny_rain_tfds.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the first one's build
    if not (data_dir / "built").exists():
      builder = TinyRain(config="mixed", data_dir=str(data_dir), file_format="array_record")
      builder.download_and_prepare()
      (data_dir / "built").write_text("")
  return str(data_dir)


def tiny_config(data_dir, **overrides):
  """configs/default.py shrunk to a model and data that train in seconds."""
  from configs import default  # pylint: disable=g-import-not-at-top

  config = default.get_config()
  config.model.stages, config.model.blocks, config.model.features = 1, 1, 8
  config.data.name = "tiny_rain/mixed"
  config.data.data_dir = data_dir
  config.data.crop_size = 24
  config.data.num_threads = 1
  config.batch_size = 4
  config.total_steps = 6
  config.learning_rate = 1e-3
  config.log_every_steps = 2
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 3
  config.eval.protocols = ("y8",)
  config.eval.num_sample_images = 2
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


def config_flags_for(data_dir, **overrides):
  """The same tiny config as command-line flags for train.py / evaluate.py."""
  values = {
    "model.stages": 1,
    "model.blocks": 1,
    "model.features": 8,
    "data.name": "tiny_rain/mixed",
    "data.data_dir": data_dir,
    "data.crop_size": 24,
    "data.num_threads": 1,
    "batch_size": 4,
    "total_steps": 6,
    "learning_rate": 1e-3,
    "log_every_steps": 2,
    "eval_every_steps": 6,
    "checkpoint_every_steps": 3,
    "eval.num_sample_images": 2,
  }
  values.update(overrides)
  return ["--config=configs/default.py"] + [f"--config.{k}={v}" for k, v in values.items()]


def run_script(args, env=None, timeout=600, check=True):
  """Runs ``python <args>`` in the repository root; returns the CompletedProcess."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  proc = subprocess.run(
    [sys.executable] + list(args),
    cwd=ROOT,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  if check and proc.returncode != 0:
    raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
  return proc


@pytest.fixture
def tmpfs(tmp_path):
  """``mount(size) -> folder``: a real tmpfs of ``size`` bytes (a full or read-only disk
  for the fault tests; ``remount(folder, options)`` changes it). Needs root, as CI is (a
  failure there); for another user the test is skipped with the reason."""
  mounted = []

  def mount(size: int) -> str:
    folder = tmp_path / f"tmpfs{len(mounted)}"
    folder.mkdir()
    proc = subprocess.run(
      ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
      capture_output=True,
      text=True,
    )
    if proc.returncode != 0:
      if os.geteuid() == 0 or os.environ.get("CI"):  # CI runs as root: never skip there
        pytest.fail(f"could not mount a tmpfs as root: {proc.stderr.strip()}")
      pytest.skip(f"mounting a tmpfs needs root: {proc.stderr.strip()}")
    mounted.append(str(folder))
    return str(folder)

  yield mount
  for folder in reversed(mounted):
    subprocess.run(["umount", "-l", folder], capture_output=True)


def remount(folder: str, options: str) -> None:
  """``mount -o remount,<options>`` (e.g. "ro", "rw", "size=4m") of a ``tmpfs`` folder."""
  subprocess.run(["mount", "-o", f"remount,{options}", folder], check=True)
