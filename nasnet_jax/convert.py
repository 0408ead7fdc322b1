"""Moves weights between the authors' PyTorch checkpoints and nasnet-jax.

    # the NASNet authors' file -> a nasnet-jax export (nasnet_jax.restore, nasnet-derain)
    python -m nasnet_jax.convert AUTHORS.pk --output=DIR --input_normalization=rain100h
    # PReNet's released weights (csdwren/PReNet, logs/<set>/PReNet6/net_latest.pth)
    python -m nasnet_jax.convert logs/Rain100L/PReNet6/net_latest.pth --output=DIR
    # a nasnet-jax workdir or export -> a file in the authors' format
    python -m nasnet_jax.convert WORKDIR --to_pytorch --output=model.pk

The network is recognised by its keys: ``pre.0`` is NASNet, ``conv0.0`` PReNet.

**NASNet** (docs/nasnet.md): ``torch.save({'step': int, 'model': state_dict})``, keys
optionally prefixed ``module.`` (``nn.DataParallel``), conv weights OIHW:

====================================  ==============================================
theirs                                ours (Flax parameter path)
====================================  ==============================================
pre.0                                 input_conv
stages.{i}.s.{j}.conv1 / conv2        stage_{i}/block_{j}/conv1 / conv2
stages.{i}.s.{j}.attlayer.att.0 / .2  stage_{i}/block_{j}/attention/depthwise / pointwise
stages.{i}.s.{blocks}                 stage_{i}/tail_conv
fusion_sub.0 / fusion_sub.1           fusion_conv3x3 / fusion_conv1x1
fusion_att.att.0 / .2                 fusion_attention/depthwise / pointwise
post.0 / post.1                       post_conv1 / post_conv2
====================================  ==============================================

Stages, blocks, features, attention (NA or none) and stage fusion are read from the keys.
The authors normalise the input with per-dataset statistics outside the network, so the
dataset the weights were trained for is given with ``--input_normalization`` (a key of
``nasnet_jax.models.INPUT_STATS``, or ``none``). Without the flag it is read from the
file name when that names exactly one dataset (``Rain100H_streak_nas_3_18_ssimloss.pk``
-> rain100h; ``spa``, ``cityscapes``, ``mpid`` with ``streak``/``drop``/``mist``), and
the command says what it inferred.

**PReNet** (docs/prenet.md): a bare state dict (``module.`` prefix optional):

====================================  ==============================================
theirs                                ours (``models.PReNet``)
====================================  ==============================================
conv0.0                               input_conv
conv_i.0 / conv_f.0                   lstm_input_gate / lstm_forget_gate (absent: PRN)
conv_g.0 / conv_o.0                   lstm_cell / lstm_output_gate (absent: PRN)
res_conv{j+1}.0 / .2                  block_{j}_conv1 / block_{j}_conv2
conv.0                                output_conv
====================================  ==============================================

Blocks, features and the LSTM are read from the keys; a file with ``res_conv1`` alone is
one of the authors' ``_r`` variants (one block applied 5 times). The number of recurrent
passes is not in the weights: it is read from the path (``PReNet6``, ``PRN6_r``: 6) or
given with ``--prenet_stages``, and the command says which. Their input is RGB in [0, 1]
with no normalisation.

Loading uses ``torch.load(..., weights_only=True)``: PyTorch's restricted unpickler, which
builds tensors and containers only and refuses anything that would run code. PyTorch is
needed for this command alone (``pip install torch``), not by the rest of the library.
"""

from __future__ import annotations

import collections
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import app, flags

from nasnet_jax import command_line
from nasnet_jax.models import INPUT_STATS


class ConversionError(ValueError):
  """The file is not a NASNet or PReNet checkpoint in its authors' layout, or holds a
  network that nasnet-jax does not have."""


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError(
      "converting PyTorch checkpoints needs PyTorch: pip install torch (the CPU wheel is enough)"
    ) from e
  return torch


def load_state_dict(path: str) -> tuple[dict[str, np.ndarray], int]:
  """(state dict as float32 numpy with any ``module.`` prefix removed, step) of a file."""
  torch = _torch()
  try:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError as e:
    raise ConversionError(f"{path} does not exist") from e
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ConversionError(
      f"{path} is not a PyTorch checkpoint that loads safely (weights only): {first[:300]}"
    ) from e
  if isinstance(checkpoint, Mapping) and "model" in checkpoint:
    state, step = checkpoint["model"], int(checkpoint.get("step", 0) or 0)
  else:
    state, step = checkpoint, 0
  if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
    raise ConversionError(
      f"{path} holds no state dict of tensors (expected "
      "{'step': int, 'model': state_dict} or a state dict)"
    )
  out = {}
  for key, value in state.items():
    key = key[len("module.") :] if key.startswith("module.") else key
    out[key] = value.detach().to(torch.float32).numpy()
  return out, step


def network_of(state: Mapping[str, np.ndarray]) -> str:
  """ "nasnet" or "prenet": whose authors' layout ``state`` is in, read from its keys."""
  if "pre.0.weight" in state:
    return "nasnet"
  if "conv0.0.weight" in state:
    return "prenet"
  raise ConversionError(
    "neither 'pre.0.weight' (NASNet) nor 'conv0.0.weight' (PReNet): not "
    f"a state dict in the authors' layout (keys start {sorted(state)[:5]})"
  )


def infer_model_config(
  state: Mapping[str, np.ndarray], input_normalization: str = ""
) -> dict[str, Any]:
  """The ``config.model`` of the NASNet whose weights ``state`` holds."""
  if network_of(state) != "nasnet":
    raise ConversionError(
      "not a NASNet state dict (no 'pre.0.weight'); PReNet's go through infer_prenet_config"
    )
  stages = sorted({int(m.group(1)) for k in state for m in [re.match(r"stages\.(\d+)\.", k)] if m})
  if not stages or stages != list(range(len(stages))):
    raise ConversionError(f"stage indices {stages} are not 0..n-1")
  blocks = len(
    {m.group(1) for k in state for m in [re.match(r"stages\.0\.s\.(\d+)\.conv1\.", k)] if m}
  )
  if blocks < 1:
    raise ConversionError("stage 0 has no block (no stages.0.s.0.conv1)")
  attention = (
    "na" if any(".attlayer.att." in k or k.startswith("fusion_att.") for k in state) else "none"
  )
  if input_normalization not in ("", "none") and input_normalization not in INPUT_STATS:
    raise ConversionError(
      f"--input_normalization={input_normalization!r} is unknown; use "
      f"none or one of {sorted(INPUT_STATS)}"
    )
  return {
    "name": "nasnet",
    "stages": len(stages),
    "blocks": blocks,
    "features": int(state["pre.0.weight"].shape[0]),
    "attention": attention,
    "fuse_stages": any(k.startswith("fusion_sub.") for k in state),
    "input_normalization": "" if input_normalization == "none" else input_normalization,
    "remat": False,
    "dtype": "float32",
    "conv_impl": "auto",
  }


# The number of recurrent passes, when the file's path does not say it: the authors'.
PRENET_DEFAULT_STAGES = 6
_LSTM_GATES = (
  ("conv_i", "lstm_input_gate"),
  ("conv_f", "lstm_forget_gate"),
  ("conv_g", "lstm_cell"),
  ("conv_o", "lstm_output_gate"),
)


# The authors' files with PReNet's keys but another network: (path pattern, what it holds).
_OTHER_PRENET_FILES = (
  (
    r"(^|/)real/",
    "the real-rain model of logs/real/ (their generator.py Generator_lstm: "
    "blocks before the LSTM, no global residual, 4 passes)",
  ),
  (
    r"(^|/)ablation/|prenet\d+_(lstm|gru|x|recssim)\b",
    "one of their ablation networks (logs/Ablation/: PReNet_LSTM, _GRU, _x, _RecSSIM)",
  ),
)


def check_prenet_path(path: str) -> None:
  """ConversionError for the authors' files that hold another network under PReNet's
  keys, recognised by their path; their released PReNet6, PRN6 and ``_r`` files pass."""
  lowered = path.lower().replace(os.sep, "/")
  for pattern, what in _OTHER_PRENET_FILES:
    if re.search(pattern, lowered):
      raise ConversionError(
        f"{path} is {what}, a different network from PReNet that "
        "nasnet-jax does not have; convert logs/<set>/PReNet6, PRN6 or "
        "their _r variants"
      )


def prenet_stages_from_path(path: str) -> int | None:
  """The recurrent passes a path of the authors' names (``PReNet6``, ``PRN6_r``: 6), or
  None when it names none."""
  found = re.findall(r"(?:prenet|prn)(\d+)", path.lower())
  return int(found[-1]) if found else None


def infer_prenet_config(state: Mapping[str, np.ndarray], stages: int) -> dict[str, Any]:
  """The ``config.model`` of the PReNet whose weights ``state`` holds, run ``stages``
  times (not in the weights)."""
  if network_of(state) != "prenet":
    raise ConversionError("not a PReNet state dict (no 'conv0.0.weight')")
  if stages < 1:
    raise ConversionError(f"--prenet_stages must be >= 1, got {stages}")
  blocks = sorted({int(m.group(1)) for k in state for m in [re.match(r"res_conv(\d+)\.", k)] if m})
  if not blocks or blocks != list(range(1, len(blocks) + 1)):
    found = ", ".join(f"res_conv{b}" for b in blocks) or "none"
    raise ConversionError(
      f"expected residual blocks res_conv1..res_convN with none missing; the file has: {found}"
    )
  recursive = len(blocks) == 1
  return {
    "name": "prenet",
    "stages": stages,
    "blocks": 5 if recursive else len(blocks),
    "features": int(state["conv0.0.weight"].shape[0]),
    "recurrent": "lstm" if any(k.startswith("conv_i.") for k in state) else "none",
    "recursive_blocks": recursive,
    "dtype": "float32",
    "conv_impl": "auto",
  }


def _prenet(config: Mapping[str, Any]):
  """The ``models.PReNet`` of ``config`` (its defaults for the fields it leaves out)."""
  from nasnet_jax.models import create_model  # pylint: disable=g-import-not-at-top

  return create_model(config)


def key_map(config: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
  """{their module name: our parameter path} for every conv of ``config``'s network."""
  if config.get("name", "nasnet") == "prenet":
    net = _prenet(config)
    names = {"conv0.0": ("input_conv",)}
    if net.recurrent == "lstm":
      names.update({f"{theirs}.0": (ours,) for theirs, ours in _LSTM_GATES})
    for j in range(1 if net.recursive_blocks else net.blocks):
      names[f"res_conv{j + 1}.0"] = (f"block_{j}_conv1",)
      names[f"res_conv{j + 1}.2"] = (f"block_{j}_conv2",)
    names["conv.0"] = ("output_conv",)
    return names
  if config.get("name", "nasnet") != "nasnet":
    raise ConversionError(f"the authors' formats are NASNet's and PReNet's, not {config['name']}'s")
  names = {"pre.0": ("input_conv",)}
  na = config["attention"] == "na"
  for i in range(config["stages"]):
    for j in range(config["blocks"]):
      ours = (f"stage_{i}", f"block_{j}")
      names[f"stages.{i}.s.{j}.conv1"] = ours + ("conv1",)
      names[f"stages.{i}.s.{j}.conv2"] = ours + ("conv2",)
      if na:
        names[f"stages.{i}.s.{j}.attlayer.att.0"] = ours + ("attention", "depthwise")
        names[f"stages.{i}.s.{j}.attlayer.att.2"] = ours + ("attention", "pointwise")
    names[f"stages.{i}.s.{config['blocks']}"] = (f"stage_{i}", "tail_conv")
  if config["fuse_stages"]:
    names["fusion_sub.0"] = ("fusion_conv3x3",)
    names["fusion_sub.1"] = ("fusion_conv1x1",)
  if na:
    names["fusion_att.att.0"] = ("fusion_attention", "depthwise")
    names["fusion_att.att.2"] = ("fusion_attention", "pointwise")
  names["post.0"] = ("post_conv1",)
  names["post.1"] = ("post_conv2",)
  return names


def to_flax(state: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> dict:
  """The authors' state dict -> Flax params of ``create_model(config)``; strict."""
  names = key_map(config)
  expected = {f"{m}.{p}" for m in names for p in ("weight", "bias")}
  missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
  if missing or extra:
    shape = (
      f"PReNet with {config['blocks']} blocks"
      if config.get("name") == "prenet"
      else f"NASNet with {config['stages']} stages x {config['blocks']} blocks"
    )
    raise ConversionError(
      f"the state dict does not match a {shape}: "
      + (f"missing {missing}" if missing else "")
      + ("; " if missing and extra else "")
      + (f"unexpected {extra}" if extra else "")
    )
  params: dict = {}
  for module, path in names.items():
    weight, bias = state[f"{module}.weight"], state[f"{module}.bias"]
    if weight.ndim != 4 or bias.shape != (weight.shape[0],):
      raise ConversionError(
        f"{module}: weight {weight.shape} / bias {bias.shape} are not "
        "a conv's (O, I, kh, kw) / (O,)"
      )
    node = params
    for part in path:
      node = node.setdefault(part, {})
    node["kernel"] = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # OIHW -> HWIO
    node["bias"] = bias
  return params


def check_shapes(params: Mapping[str, Any], config: Mapping[str, Any]) -> None:
  """ConversionError listing every parameter whose shape is not what
  ``create_model(config)`` builds (a file of another network under the same keys)."""
  import jax  # pylint: disable=g-import-not-at-top

  from nasnet_jax.models import create_model, init_params  # pylint: disable=g-import-not-at-top

  expected = jax.eval_shape(lambda: init_params(create_model(config), jax.random.key(0)))
  flat = dict(jax.tree_util.tree_leaves_with_path(expected))
  wrong = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    want = flat.get(path)
    if want is not None and tuple(want.shape) != tuple(np.shape(leaf)):
      wrong.append(
        f"{'/'.join(str(getattr(k, 'key', k)) for k in path)} "
        f"{tuple(np.shape(leaf))} (expected {tuple(want.shape)})"
      )
  if wrong:
    raise ConversionError(
      f"shapes do not match a {config.get('name', 'nasnet')} of this layout: {'; '.join(wrong[:4])}"
    )


def to_state_dict(params: Mapping[str, Any], config: Mapping[str, Any]) -> collections.OrderedDict:
  """Flax params -> the authors' state dict (numpy, OIHW), in their module order."""
  state = collections.OrderedDict()
  for module, path in key_map(config).items():
    node = params
    for part in path:
      node = node[part]
    state[f"{module}.weight"] = np.asarray(node["kernel"], np.float32).transpose(3, 2, 0, 1)
    state[f"{module}.bias"] = np.asarray(node["bias"], np.float32)
  return state


# File-name patterns of the datasets, tried on the lower-cased name; Rain100H/L first, as
# their files also say "streak".
_NAME_PATTERNS = (
  ("rain100h", r"rain100h"),
  ("rain100l", r"rain100l"),
  ("spa_real", r"(?<![a-z])spa(?![a-z])|spa[-_]?data|spa[-_]?real"),
  ("raincityscapes", r"cityscape"),
  ("mpid_streak", r"streak"),
  ("mpid_drop", r"drop"),
  ("mpid_mist", r"mist"),
)


def infer_input_normalization(path: str) -> str | None:
  """The key of ``INPUT_STATS`` that the authors' file name names, or None when it names
  none or more than one (then --input_normalization is needed)."""
  name = os.path.basename(path).lower()
  for key, pattern in _NAME_PATTERNS[:2]:
    if re.search(pattern, name):
      return key
  found = [key for key, pattern in _NAME_PATTERNS[2:] if re.search(pattern, name)]
  if len(found) == 1:
    return found[0]
  if found[:1] == ["raincityscapes"]:  # RainCityScapes files may say "streak" or "mist"
    return "raincityscapes"
  return None


def from_pytorch(
  path: str, output: str, input_normalization: str = "", prenet_stages: int | None = None
) -> str:
  """Converts the authors' file at ``path`` (NASNet or PReNet) into a nasnet-jax export
  at ``output``. ``input_normalization`` is NASNet's alone; ``prenet_stages`` (None: from
  the path, else 6) PReNet's alone."""
  from nasnet_jax import export  # pylint: disable=g-import-not-at-top

  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(output):
    raise FileExistsError(f"--output={output} exists; choose a new folder")
  state, _ = load_state_dict(path)
  if network_of(state) == "prenet":
    check_prenet_path(path)
    stages = (
      prenet_stages
      if prenet_stages is not None
      else (prenet_stages_from_path(path) or PRENET_DEFAULT_STAGES)
    )
    config = infer_prenet_config(state, stages)
  else:
    config = infer_model_config(state, input_normalization)
  params = to_flax(state, config)
  check_shapes(params, config)
  export.save_params(os.path.join(output, "checkpoint"), config, params)
  return output


def to_pytorch(source: str, output: str, step: int = 0) -> str:
  """Writes the network at ``source`` (workdir or export) in the authors' format."""
  from nasnet_jax import checkpointing  # pylint: disable=g-import-not-at-top

  torch = _torch()
  if os.path.exists(output):
    raise FileExistsError(f"--output={output} exists; choose a new file name")
  config, params = checkpointing.restore_config_and_params(source)
  if config.get("attention", "na") == "se":
    raise ConversionError("the authors' format has no squeeze-and-excitation gate")
  if config.get("name") == "prenet":
    # Their files hold one residual block for the _r variants (applied 5 times) and
    # several otherwise: other shapes would come back as another network.
    net = _prenet(config)
    recursive, blocks = net.recursive_blocks, net.blocks
    if (recursive and blocks != 5) or (not recursive and blocks == 1):
      raise ConversionError(
        f"a PReNet with {blocks} block(s)"
        + (" applied recursively" if recursive else "")
        + " has no file layout of the authors' that converts back to it"
      )
    if net.stages != PRENET_DEFAULT_STAGES:
      print(
        f"note: the file does not store PReNet's {net.stages} passes; convert it "
        f"back with --prenet_stages={net.stages}"
      )
  state = collections.OrderedDict(
    (k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in to_state_dict(params, config).items()
  )
  tmp = f"{output}.tmp{os.getpid()}"
  # PReNet's authors save the bare state dict; NASNet's wrap it with the step.
  torch.save(state if config.get("name") == "prenet" else {"step": step, "model": state}, tmp)
  os.replace(tmp, output)
  return output


FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Command-line flags, defined only when run as a program (not on import)."""
  flags.DEFINE_string("output", None, "New folder (export) or file (--to_pytorch).")
  flags.DEFINE_string(
    "input_normalization",
    None,
    "Dataset whose input statistics the authors' weights were trained with: "
    f"{', '.join(sorted(INPUT_STATS))}, or none.",
  )
  flags.DEFINE_integer(
    "prenet_stages",
    None,
    "PReNet's recurrent passes (not stored in its weights); default: read "
    "from the path (PReNet6: 6), else 6.",
  )
  flags.DEFINE_bool(
    "to_pytorch", False, "Write a nasnet-jax workdir/export in the authors' format instead."
  )
  flags.DEFINE_bool("verbose", False, "Also print INFO logs of orbax and JAX.")


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) != 2 or not FLAGS.output:
    print(
      "usage: python -m nasnet_jax.convert AUTHORS.pk --output=DIR "
      "[--input_normalization=DATASET|none]\n"
      "       python -m nasnet_jax.convert PRENET.pth --output=DIR [--prenet_stages=T]\n"
      "       python -m nasnet_jax.convert WORKDIR_OR_EXPORT --to_pytorch "
      "--output=FILE.pk",
      file=sys.stderr,
    )
    sys.exit(2)

  def convert():
    if FLAGS.to_pytorch:
      return to_pytorch(argv[1], FLAGS.output)
    if network_of(load_state_dict(argv[1])[0]) == "prenet":
      return _prenet_from_pytorch(argv[1])
    normalization = FLAGS.input_normalization
    if normalization is None:
      normalization = infer_input_normalization(argv[1])
      if normalization is None:
        raise ConversionError(
          f"{os.path.basename(argv[1])} does not name the dataset the weights were "
          f"trained on; pass --input_normalization={'|'.join(sorted(INPUT_STATS))}|none"
        )
      print(
        f"--input_normalization={normalization} (inferred from the file name; pass "
        "the flag to choose another)"
      )
    return from_pytorch(argv[1], FLAGS.output, normalization)

  print(f"wrote {command_line.run(convert)}")


def _prenet_from_pytorch(path: str) -> str:
  """``from_pytorch`` for a PReNet file, saying where its number of passes came from."""
  if FLAGS.input_normalization not in (None, "", "none"):
    raise ConversionError(
      "--input_normalization is for NASNet's files; PReNet takes RGB in "
      "[0, 1] as it is: leave the flag out"
    )
  check_prenet_path(path)
  stages = FLAGS.prenet_stages
  if stages is None:
    stages = prenet_stages_from_path(path)
    if stages is None:
      stages = PRENET_DEFAULT_STAGES
      print(f"--prenet_stages={stages} (the authors' number; the path names none)")
    else:
      print(f"--prenet_stages={stages} (inferred from the path; pass the flag to choose another)")
  return from_pytorch(path, FLAGS.output, prenet_stages=stages)


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
