"""The authors' PyTorch checkpoints <-> nasnet-jax, both ways, with output parity."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nasnet_jax  # pylint: disable=g-import-not-at-top
from nasnet_jax import (  # pylint: disable=g-import-not-at-top
  convert,  # pylint: disable=g-import-not-at-top
  torch_nasnet,
  torch_prenet,
)
from nasnet_jax.models import INPUT_STATS  # pylint: disable=g-import-not-at-top
from tests.conftest import run_script  # pylint: disable=g-import-not-at-top


def _authors_file(path, net, prefix="module.", step=1234):
  state = {prefix + k: v for k, v in net.state_dict().items()}
  torch.save({"step": step, "model": state}, path)


def _torch_out(net, images, normalization):
  x = torch.from_numpy(images).permute(0, 3, 1, 2)
  if normalization:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in INPUT_STATS[normalization])
    x = (x - mean) / std
  with torch.no_grad():
    return net(x).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize(
  "kwargs, normalization, file_name",
  [
    # No flag: the dataset is read from the authors' file name.
    (
      {"stages": 2, "blocks": 3, "channels": 16},
      "rain100h",
      "Rain100H_streak_nas_3_18_ssimloss.pk",
    ),
    ({"stages": 1, "blocks": 2, "channels": 8, "attention": False}, "none", "authors.pk"),
    ({"stages": 2, "blocks": 1, "channels": 8, "fuse_stages": False}, "spa_real", "authors.pk"),
  ],
)
def test_authors_weights_convert_with_the_same_output(kwargs, normalization, file_name, tmp_path):
  torch.manual_seed(0)
  net = torch_nasnet.NASNet(**kwargs).eval()
  _authors_file(tmp_path / file_name, net)
  inferred = convert.infer_input_normalization(file_name) == normalization
  proc = run_script(
    ["-m", "nasnet_jax.convert", str(tmp_path / file_name), f"--output={tmp_path / 'converted'}"]
    + ([] if inferred else [f"--input_normalization={normalization}"])
  )
  assert "wrote" in proc.stdout
  assert (f"--input_normalization={normalization} (inferred" in proc.stdout) == inferred
  model, params = nasnet_jax.restore(str(tmp_path / "converted"))
  assert (model.stages, model.blocks, model.features) == (
    kwargs["stages"],
    kwargs["blocks"],
    kwargs["channels"],
  )
  images = np.random.default_rng(0).random((2, 33, 41, 3), dtype=np.float32)
  ours = np.asarray(model.apply({"params": params}, images))
  theirs = _torch_out(net, images, "" if normalization == "none" else normalization)
  np.testing.assert_allclose(ours, theirs, atol=1e-4)

  # And back: our weights in their layout load strictly into their model.
  proc = run_script(
    [
      "-m",
      "nasnet_jax.convert",
      str(tmp_path / "converted"),
      "--to_pytorch",
      f"--output={tmp_path / 'back.pk'}",
    ]
  )
  back = torch.load(tmp_path / "back.pk", weights_only=True)
  fresh = torch_nasnet.NASNet(**kwargs).eval()
  fresh.load_state_dict(back["model"], strict=True)
  np.testing.assert_allclose(
    _torch_out(fresh, images, "" if normalization == "none" else normalization), theirs, atol=1e-6
  )


@pytest.mark.parametrize(
  "name, expected",
  [
    ("Rain100H_streak_nas_3_18_ssimloss.pk", "rain100h"),
    ("rain100l_nas.pth", "rain100l"),
    ("SPA_nas_3_18.pk", "spa_real"),
    ("spa-data-net.pk", "spa_real"),
    ("RainCityScapes_streak_mist.pk", "raincityscapes"),
    ("MPID_drop_nas.pk", "mpid_drop"),
    ("mpid-mist.pk", "mpid_mist"),
    ("nas_3_18.pk", None),  # names nothing
    ("streak_and_drop.pk", None),  # names two
    ("spatial_net.pk", None),  # "spa" only as a word
  ],
)
def test_the_dataset_is_inferred_from_the_authors_file_name_only_when_unambiguous(name, expected):
  assert convert.infer_input_normalization(f"/weights/{name}") == expected


def test_missing_and_extra_keys_are_listed(tmp_path):
  net = torch_nasnet.NASNet(stages=1, blocks=2, channels=8)
  state = dict(net.state_dict())
  del state["stages.0.s.1.conv2.bias"]
  state["stages.0.s.0.extra.weight"] = torch.zeros(1)
  torch.save({"step": 1, "model": state}, tmp_path / "bad.pk")
  with pytest.raises(convert.ConversionError) as info:
    convert.from_pytorch(str(tmp_path / "bad.pk"), str(tmp_path / "out"), "none")
  assert "missing ['stages.0.s.1.conv2.bias']" in str(info.value)
  assert "unexpected ['stages.0.s.0.extra.weight']" in str(info.value)
  assert not (tmp_path / "out").exists()


class _RunsCode:
  def __reduce__(self):
    return (os.system, ("touch pwned_by_checkpoint",))


def test_files_that_are_not_checkpoints_are_refused_without_running_code(tmp_path):
  torch.save({"step": 1, "model": _RunsCode()}, tmp_path / "evil.pk")
  proc = run_script(
    [
      "-m",
      "nasnet_jax.convert",
      str(tmp_path / "evil.pk"),
      f"--output={tmp_path / 'out'}",
      "--input_normalization=none",
    ],
    check=False,
  )
  assert proc.returncode == 1 and "loads safely" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert not os.path.exists(os.path.join(os.path.dirname(__file__), "..", "pwned_by_checkpoint"))
  (tmp_path / "text.pk").write_text("hello")
  with pytest.raises(convert.ConversionError, match="not a PyTorch checkpoint"):
    convert.load_state_dict(str(tmp_path / "text.pk"))
  torch.save({"step": 1, "model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pk")
  with pytest.raises(convert.ConversionError, match=r"neither .pre.0.weight. \(NASNet\)"):
    convert.from_pytorch(str(tmp_path / "other.pk"), str(tmp_path / "o"), "none")
  proc = run_script(
    ["-m", "nasnet_jax.convert", str(tmp_path / "other.pk"), f"--output={tmp_path / 'o2'}"],
    check=False,
  )
  assert proc.returncode == 1 and "not a state dict in the authors' layout" in proc.stderr
  _authors_file(tmp_path / "nas.pk", torch_nasnet.NASNet(stages=1, blocks=1, channels=4))
  proc = run_script(
    ["-m", "nasnet_jax.convert", str(tmp_path / "nas.pk"), f"--output={tmp_path / 'o3'}"],
    check=False,
  )
  assert proc.returncode == 1 and "nas.pk does not name the dataset" in proc.stderr
  assert "--input_normalization=" in proc.stderr


def _prenet_file(path, net, prefix=""):
  """A file as the PReNet authors save theirs: ``torch.save(model.state_dict())``."""
  path.parent.mkdir(parents=True, exist_ok=True)
  torch.save({prefix + k: v for k, v in net.state_dict().items()}, path)


@pytest.mark.parametrize(
  "kwargs, file_name, prefix, stages_flag",
  [
    # The authors' layout and path: 32 features, 5 blocks, passes read from "PReNet3".
    ({"stages": 3}, "logs/Rain100L/PReNet3/net_latest.pth", "", None),
    # PRN with a DataParallel prefix; the path names no passes: the flag gives them.
    ({"stages": 2, "blocks": 2, "channels": 8, "recurrent": False}, "prn.pth", "module.", 2),
    # An _r variant: one block, applied five times.
    (
      {"stages": 2, "channels": 8, "recursive_blocks": True},
      "logs/Rain1400/PReNet2_r/net_latest.pth",
      "",
      None,
    ),
  ],
)
def test_prenet_weights_convert_both_ways_with_the_same_output(
  kwargs, file_name, prefix, stages_flag, tmp_path
):
  torch.manual_seed(0)
  net = torch_prenet.PReNet(**kwargs).eval()
  _prenet_file(tmp_path / file_name, net, prefix)
  proc = run_script(
    ["-m", "nasnet_jax.convert", str(tmp_path / file_name), f"--output={tmp_path / 'converted'}"]
    + ([f"--prenet_stages={stages_flag}"] if stages_flag else [])
  )
  assert ("(inferred from the path" in proc.stdout) == (stages_flag is None)
  model, params = nasnet_jax.restore(str(tmp_path / "converted"))
  assert type(model).__name__ == "PReNet" and model.stages == kwargs["stages"]
  images = np.random.default_rng(0).random((2, 27, 35, 3), dtype=np.float32)
  ours = np.asarray(model.apply({"params": params}, images))
  theirs = _torch_out(net, images, "")
  np.testing.assert_allclose(ours, theirs, atol=1e-4)

  # And back: a bare state dict, as the authors save it, loads strictly into their layout.
  run_script(
    [
      "-m",
      "nasnet_jax.convert",
      str(tmp_path / "converted"),
      "--to_pytorch",
      f"--output={tmp_path / 'back.pth'}",
    ]
  )
  fresh = torch_prenet.PReNet(**kwargs).eval()
  fresh.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
  np.testing.assert_allclose(_torch_out(fresh, images, ""), theirs, atol=1e-6)


def test_prenet_files_refuse_nasnet_options_and_missing_blocks(tmp_path):
  net = torch_prenet.PReNet(stages=1, blocks=3, channels=4)
  _prenet_file(tmp_path / "PReNet1.pth", net)
  proc = run_script(
    [
      "-m",
      "nasnet_jax.convert",
      str(tmp_path / "PReNet1.pth"),
      f"--output={tmp_path / 'o'}",
      "--input_normalization=rain100l",
    ],
    check=False,
  )
  assert proc.returncode == 1 and "--input_normalization is for NASNet" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  state = dict(net.state_dict())
  for key in [k for k in state if k.startswith("res_conv2.")]:
    del state[key]
  torch.save(state, tmp_path / "gap.pth")
  with pytest.raises(
    convert.ConversionError,
    match=r"res_convN with none missing; the file has: res_conv1, res_conv3$",
  ):
    convert.from_pytorch(str(tmp_path / "gap.pth"), str(tmp_path / "o2"))
  assert not (tmp_path / "o2").exists()


def test_the_authors_other_networks_under_prenet_names_are_refused(tmp_path):
  """Their real-rain and ablation files use PReNet's module names for other networks:
  refused by path, and a file whose shapes belong to another network by its shapes."""
  net = torch_prenet.PReNet(stages=1, blocks=2, channels=4)
  for path in (
    "logs/real/PReNet1.pth",
    "logs/Ablation/PReNet6_LSTM/net_latest.pth",
    "PReNet6_GRU/net_latest.pth",
  ):
    _prenet_file(tmp_path / path, net)
    proc = run_script(
      ["-m", "nasnet_jax.convert", str(tmp_path / path), f"--output={tmp_path / 'out'}"],
      check=False,
    )
    assert proc.returncode == 1 and "a different network from PReNet" in proc.stderr, path
    assert len(proc.stderr.strip().splitlines()) == 1
  state = dict(net.state_dict())
  state["conv0.0.weight"] = torch.zeros(4, 3, 3, 3)  # PReNet_x: the rainy image alone
  torch.save(state, tmp_path / "other.pth")
  with pytest.raises(
    convert.ConversionError, match=r"input_conv/kernel \(3, 3, 3, 4\) \(expected \(3, 3, 6, 4\)\)"
  ):
    convert.from_pytorch(str(tmp_path / "other.pth"), str(tmp_path / "o"))
  assert not (tmp_path / "o").exists()
  _prenet_file(tmp_path / "PReNet6.pth", net)
  with pytest.raises(convert.ConversionError, match="--prenet_stages must be >= 1, got 0"):
    convert.from_pytorch(str(tmp_path / "PReNet6.pth"), str(tmp_path / "o"), prenet_stages=0)


def test_prenet_shapes_without_a_file_layout_are_not_written_back(tmp_path):
  from tests.test_export import tiny_export  # pylint: disable=g-import-not-at-top

  source, _, _ = tiny_export(
    tmp_path / "a", {"name": "prenet", "stages": 2, "blocks": 1, "features": 4}
  )
  with pytest.raises(convert.ConversionError, match="1 block.s. has no file layout"):
    convert.to_pytorch(source, str(tmp_path / "a.pth"))
  source, _, _ = tiny_export(
    tmp_path / "b", {"name": "prenet", "stages": 3, "blocks": 2, "features": 4}
  )
  proc = run_script(
    ["-m", "nasnet_jax.convert", source, "--to_pytorch", f"--output={tmp_path / 'b.pth'}"]
  )
  assert "convert it back with --prenet_stages=3" in proc.stdout
