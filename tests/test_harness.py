"""benchmarks/harness.py, piece by piece at toy size: the timer, peak memory, the one ratio
against PyTorch, FLOP counts, peak tables, the machine line and the table writer."""

import types

import jax
import numpy as np
import pytest

from benchmarks import harness
from nasnet_jax import inference
from nasnet_jax.models import create_model, init_params


def test_timer_warms_up_once_and_reports_the_median(monkeypatch):
  clock = [0.0]
  durations = iter([10.0, 3.0, 1.0, 2.0])  # the warm-up, then three timed calls
  calls = []

  def fn():
    calls.append(1)
    clock[0] += next(durations)

  monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])
  timing = harness.timed(fn, 3, memory=None)
  assert len(calls) == 4
  assert timing.warmup_s == 10.0 and timing.times == [3.0, 1.0, 2.0]
  assert timing.median_s == 2.0 and timing.peak_bytes is None
  warmup, times, peak = timing  # unpacks as (warm-up, times, peak bytes)
  assert (warmup, times, peak) == (10.0, [3.0, 1.0, 2.0], None)
  with pytest.raises(ValueError, match="memory"):
    harness.timed(fn, 1, memory="warmup")


def test_peak_memory_is_of_the_timed_calls_unless_asked_for_all():
  """A warm-up that allocates 128 MiB counts only with memory="all"."""
  if jax.default_backend() != "cpu":
    pytest.skip("resident-set peak: CPU only")
  mib = 2**20

  def allocates_at_first():
    first = not state
    state.append(1)
    if first:
      np.ones(128 * mib // 8).sum()  # touched, so resident

  state = []
  repeats = harness.timed(allocates_at_first, 2, memory="repeats").peak_bytes
  state.clear()
  everything = harness.timed(allocates_at_first, 2, memory="all").peak_bytes
  if repeats is None or everything is None:
    pytest.skip("no /proc/self/clear_refs here")
  assert repeats < 32 * mib and everything >= 96 * mib
  with harness.PeakMemory() as memory:
    np.ones(64 * mib // 8).sum()
  assert memory.bytes >= 48 * mib


def test_speed_over_torch_is_above_one_when_faster_than_pytorch():
  rows = [
    {"case": "a", "variant": "torch", "s": 2.0},
    {"case": "a", "variant": "jax", "s": 1.0},  # twice as fast
    {"case": "a", "variant": "jax_slow", "s": 4.0},  # half as fast
    {"case": "a", "variant": "jax_skipped", "s": None},
    {"case": "b", "variant": "jax", "s": 1.0},  # no PyTorch row
    {"case": None, "variant": "jax", "s": 1.0},
  ]  # takes no part
  harness.add_speed_over_torch(
    rows,
    case=lambda r: r["case"],
    is_torch=lambda r: r["variant"] == "torch",
    seconds=lambda r: r["s"],
  )
  key = harness.SPEED_OVER_TORCH
  assert key == "speed_over_torch"
  assert [r.get(key, "absent") for r in rows] == [1.0, 2.0, 0.5, "absent", None, "absent"]
  # ``rated`` picks the rows that get one; the PyTorch row still serves as reference.
  for r in rows:
    r.pop(key, None)
  harness.add_speed_over_torch(
    rows,
    lambda r: r["case"],
    lambda r: r["variant"] == "torch",
    lambda r: r["s"],
    rated=lambda r: r["variant"] == "jax",
  )
  assert [r.get(key, "absent") for r in rows] == ["absent", 2.0, "absent", "absent", None, "absent"]


def test_markdown_table_and_cells():
  assert harness.markdown_table(("a", "b"), [(1, "x"), ("", 2.5)]) == [
    "| a | b |",
    "| --- | --- |",
    "| 1 | x |",
    "|  | 2.5 |",
  ]
  assert harness.markdown_table(["only"], []) == ["| only |", "| --- |"]
  assert [harness.fmt(v) for v in (None, 0.123456, 12345.6, 7, "x")] == [
    "–",
    "0.123",
    "12,346",
    "7",
    "x",
  ]
  assert harness.fmt(0.123456, 2) == "0.12"


@pytest.mark.parametrize("arch", [(1, 1, 8), (2, 1, 8)])
def test_analytic_nasnet_flops_match_xla(arch):
  """XLA adds the elementwise work and leaves out the taps on the zero padding: at 64x64
  the two counts agree within 5 %; the analytic count is of the convolutions alone."""
  model = create_model(harness.model_config(arch, conv_impl="xla").model)
  xla = harness.xla_forward_flops(model, 64)
  analytic = harness.nasnet_forward_flops_per_pixel(*arch) * 64 * 64
  assert 0.95 <= analytic / xla <= 1.05
  params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0)))
  assert harness.xla_forward_flops(model, 64, params) == xla
  assert harness.train_step_flops(arch, 2, 16) == 3 * analytic / 64**2 * 2 * 16**2


def test_call_recording_derainer_counts_every_call():
  model = create_model(harness.model_config((1, 1, 4)).model)
  params = init_params(model, jax.random.PRNGKey(0))
  derainer = harness.CallRecordingDerainer(model, params)
  image = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
  np.testing.assert_array_equal(derainer(image), inference.Derainer(model, params)(image))
  once = derainer.gflop()
  derainer(image)
  assert len(derainer.calls) == 2 and once > 0
  assert derainer.gflop() == pytest.approx(2 * once)


def test_bf16_peak_by_device_kind():
  device = lambda kind, platform="gpu": types.SimpleNamespace(  # noqa: E731
    platform=platform, device_kind=kind
  )
  assert harness.bf16_peak(device("NVIDIA H100 80GB HBM3")) == 989e12
  assert harness.bf16_peak(device("TPU v5 lite", "tpu")) == 197e12  # not v5's 459e12
  assert harness.bf16_peak(device("TPU v5", "tpu")) == 459e12
  assert harness.bf16_peak(device("Some GPU")) is None
  assert harness.bf16_peak(device("cpu", "cpu")) is None


def test_machine_line_names_what_a_figure_depends_on(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
  info = harness.machine()
  assert info["backend"] == jax.default_backend() and info["jax"] == jax.__version__
  assert info["cpu"] == harness.cpu_name() and info["cpu"]
  assert "torch" not in info and info["xla_flags"] == "--xla_dump_to=/tmp/x"
  line = harness.machine_line(info)
  assert line.startswith(f"{info['date']}, commit {info['commit']}, {info['cpu']}, ")
  assert "torch" not in line and line.endswith(", XLA_FLAGS='--xla_dump_to=/tmp/x'")
  line = harness.machine_line(dict(info, torch="2.0", torch_threads=2))
  assert "; jax " + jax.__version__ + ", torch 2.0 (2 threads), python " in line


def test_error_line_is_the_first_line_of_the_message():
  assert harness.error_line(ValueError("first\nsecond")) == "ValueError: first"
  assert harness.error_line(RuntimeError("")) == "RuntimeError: "
  assert harness.error_line(KeyError("x" * 500), 10) == "KeyError: 'xxxxxxxxx"


def test_model_config_and_batches():
  config = harness.model_config((1, 2, 8), dtype="bfloat16")
  assert (config.model.stages, config.model.blocks, config.model.features) == (1, 2, 8)
  assert config.model.dtype == "bfloat16"
  assert config.data.synthetic_rain_fraction == 0 and config.data.clean_fraction == 0
  assert harness.model_config("ddsa_demo").model.name == "ddsa"
  batch = harness.random_batch(3, 16, seed=1)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
    "rainy": ((3, 16, 16, 3), np.uint8),
    "clean": ((3, 16, 16, 3), np.uint8),
  }
  assert (batch["rainy"] >= batch["clean"]).all() and (batch["rainy"] > batch["clean"]).any()
  np.testing.assert_array_equal(batch["rainy"], harness.random_batch(3, 16, seed=1)["rainy"])


def test_torch_ssim_is_dm_pix_ssim():
  torch = pytest.importorskip("torch")
  import dm_pix  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  a, b = rng.random((2, 2, 24, 24, 3), dtype=np.float32)
  b = 0.7 * a + 0.3 * b
  ours = float(harness.torch_ssim(*(torch.from_numpy(x).permute(0, 3, 1, 2) for x in (a, b))))
  theirs = float(np.mean(dm_pix.ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5)))
  assert ours == pytest.approx(theirs, abs=1e-5)
