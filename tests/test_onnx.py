"""ONNX export (jax2onnx) and the ONNX Runtime backend: the file derains any size as the
library does, runs with ONNX Runtime alone (docs/onnx.md's example), and the CLI's
``--backend=onnxruntime`` derains a folder."""

import os
import re
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax2onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402  pylint: disable=g-import-not-at-top

from nasnet_jax import derain_command, export, inference, pretrained_models  # noqa: E402
from tests.conftest import ROOT, run_script  # noqa: E402
from tests.test_export import tiny_export  # noqa: E402


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
  """A tiny NASNet (input normalisation on: the authors' option) and its ONNX file."""
  directory = tmp_path_factory.mktemp("onnx")
  source, model, params = tiny_export(directory)
  return export.export_onnx(source, str(directory / "tiny.onnx")), model, params


def test_the_file_derains_any_size_as_the_library(tiny_onnx):
  path, model, params = tiny_onnx
  proto = onnx.load(path)
  onnx.checker.check_model(proto)
  assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
  [image] = proto.graph.input
  dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
  assert image.name == "image" and dims[3] == 3 and all(isinstance(d, str) for d in dims[:3])
  # docs/onnx.md's list: NASNet's operations, Sub and Div for its input normalisation.
  assert {node.op_type for node in proto.graph.node} == {
    "Conv",
    "Relu",
    "Sigmoid",
    "Mul",
    "Add",
    "Concat",
    "Transpose",
    "Clip",
    "Sub",
    "Div",
  }
  meta = {p.key: p.value for p in proto.metadata_props}
  assert meta[export.ONNX_RADIUS_KEY] == str(model.receptive_field_radius)
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top

  session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  rng = np.random.default_rng(0)
  for shape in ((2, 37, 53, 3), (1, 21, 30, 3), (1, 8, 97, 3)):
    images = rng.random(shape, dtype=np.float32)
    out = session.run(None, {"image": images})[0]
    assert out.shape == shape and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, inference.derain(model, params, images), atol=1e-4)


def test_onnx_derainer_matches_derainer_whole_tiled_and_ensembled(tiny_onnx):
  path, model, params = tiny_onnx
  rng = np.random.default_rng(1)
  image = (rng.random((45, 61, 3)) * 255).astype(np.uint8)
  photo = rng.random((45, 61, 3), dtype=np.float32)
  for options in ({}, {"tile": 16}, {"tile": 16, "overlap": 3}, {"ensemble": True}):
    ours = inference.OnnxDerainer(path, **options)
    theirs = inference.Derainer(model, params, **options)
    assert ours.overlap == theirs.overlap
    np.testing.assert_allclose(ours(photo), theirs(photo), atol=1e-4, err_msg=str(options))
    assert np.abs(ours(image).astype(int) - theirs(image).astype(int)).max() <= 1
  with pytest.raises(FileNotFoundError, match="not a file"):
    inference.OnnxDerainer(path + ".missing")


def test_export_cli_writes_the_shipped_model_and_onnx_runtime_alone_runs_it(tmp_path):
  out = tmp_path / "general.onnx"
  proc = run_script(["-m", "nasnet_jax.export", "--format=onnx", "--pretrained", f"--output={out}"])
  assert "ONNX opset 17" in proc.stdout and out.is_file()
  # docs/onnx.md's example, as written, in a process that never imports JAX.
  doc = open(os.path.join(ROOT, "docs", "onnx.md")).read()
  example = re.search(r"## ONNX Runtime alone.*?```python\n(.*?)```", doc, re.S).group(1)
  rng = np.random.default_rng(2)
  rainy = (rng.random((67, 91, 3)) * 255).astype(np.uint8)
  from PIL import Image  # pylint: disable=g-import-not-at-top

  Image.fromarray(rainy).save(tmp_path / "rainy.png")
  script = (
    example.replace('"general.onnx"', repr(str(out)))
    .replace('"rainy.png"', repr(str(tmp_path / "rainy.png")))
    .replace('"derained.png"', repr(str(tmp_path / "derained.png")))
  )
  script += textwrap.dedent("""
      import sys
      loaded = [m for m in ("jax", "flax", "nasnet_jax") if m in sys.modules]
      assert not loaded, loaded
  """)
  run_script(["-c", script], env={"PYTHONPATH": ""})
  derained = np.asarray(Image.open(tmp_path / "derained.png"))
  model, params = pretrained_models.pretrained()
  expected = inference.derain(model, params, rainy)
  assert np.abs(derained.astype(int) - expected.astype(int)).max() <= 1
  # Never over an existing file; one source, not two.
  again = run_script(
    ["-m", "nasnet_jax.export", "--format=onnx", "--pretrained", f"--output={out}"], check=False
  )
  assert again.returncode == 1 and again.stderr.startswith("error: --output=")
  assert again.stderr.count("\n") == 1
  both = run_script(
    [
      "-m",
      "nasnet_jax.export",
      "--format=onnx",
      "--pretrained",
      "--workdir=x",
      f"--output={tmp_path / 'b.onnx'}",
    ],
    check=False,
  )
  assert both.returncode == 2 and "or --pretrained" in both.stderr


def test_a_network_the_converter_cannot_express_is_one_line_naming_where(tmp_path):
  config = {
    "name": "ddsa",
    "features": 8,
    "blocks": (1, 1),
    "heads": (1, 2),
    "refinement_blocks": 0,
    "sparse_ratios": (0.5,),
  }
  source, _, _ = tiny_export(tmp_path, config)
  with pytest.raises(
    export.OnnxConversionError,
    match=r"cannot convert DDSA to ONNX with symbolic sizes: its 'pad' op",
  ):
    export.export_onnx(source, str(tmp_path / "ddsa.onnx"))
  assert not (tmp_path / "ddsa.onnx").exists()


def test_cli_onnx_backend_derains_a_folder_as_the_jax_backend(tmp_path, tiny_onnx):
  path, _, _ = tiny_onnx
  folder = tmp_path / "photos"
  folder.mkdir()
  rng = np.random.default_rng(3)
  from PIL import Image  # pylint: disable=g-import-not-at-top

  for name, size in (("a.png", (40, 52)), ("b.png", (33, 29))):
    Image.fromarray((rng.random(size + (3,)) * 255).astype(np.uint8)).save(folder / name)
  source = os.path.dirname(path) + "/source"
  assert (
    derain_command.run(
      [str(folder), f"--output_dir={tmp_path / 'jax'}", f"--checkpoint={source}", "--backend=jax"]
    )
    == 0
  )
  # A .onnx file picks ONNX Runtime by itself; a checkpoint is exported on the fly.
  assert (
    derain_command.run([str(folder), f"--output_dir={tmp_path / 'file'}", f"--checkpoint={path}"])
    == 0
  )
  assert (
    derain_command.run(
      [
        str(folder),
        f"--output_dir={tmp_path / 'fly'}",
        f"--checkpoint={source}",
        "--backend=onnxruntime",
        "--tile=16",
      ]
    )
    == 0
  )
  for name in ("a.png", "b.png"):
    reference = np.asarray(Image.open(tmp_path / "jax" / name)).astype(int)
    for run in ("file", "fly"):
      assert (
        np.abs(np.asarray(Image.open(tmp_path / run / name)).astype(int) - reference).max() <= 1
      ), (run, name)
  assert (
    derain_command.run(
      [str(folder), f"--output_dir={tmp_path / 'x'}", f"--checkpoint={path}", "--backend=jax"]
    )
    == 1
  )
  assert (
    derain_command.run(
      [str(folder), f"--output_dir={tmp_path / 'y'}", f"--checkpoint={path}", "--bf16"]
    )
    == 1
  )


def test_converted_prenet_derains_through_the_cli_tiled_and_with_onnx_runtime(tmp_path):
  """PReNet weights in the authors' layout (drawn at random: their files are not ours to
  ship), converted with one command, derain a photo through nasnet-derain: whole, in exact
  tiles, and through ONNX Runtime, all alike. The recurrence is unrolled in the ONNX graph,
  which adds to NASNet's operations Tanh for the LSTM and Shape, Gather and Expand for its
  zero initial state (shaped like the image)."""
  torch = pytest.importorskip("torch")
  from nasnet_jax import torch_prenet  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  weights = tmp_path / "PReNet2" / "net_latest.pth"
  weights.parent.mkdir()
  torch.save(torch_prenet.PReNet(stages=2, blocks=2, channels=8).state_dict(), weights)
  run_script(["-m", "nasnet_jax.convert", str(weights), f"--output={tmp_path / 'prenet'}"])
  from PIL import Image  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(4)
  photo = tmp_path / "photos" / "rainy.png"
  photo.parent.mkdir()
  Image.fromarray((rng.random((45, 70, 3)) * 255).astype(np.uint8)).save(photo)
  runs = {
    "whole": ["--backend=jax"],
    "tiles": ["--backend=jax", "--tile=16"],
    "onnx": ["--backend=onnxruntime"],
    "onnx_tiles": ["--backend=onnxruntime", "--tile=16"],
  }
  for run, flags in runs.items():
    assert (
      derain_command.run(
        [str(photo), f"--output_dir={tmp_path / run}", f"--checkpoint={tmp_path / 'prenet'}"]
        + flags
      )
      == 0
    ), run
  whole = np.asarray(Image.open(tmp_path / "whole" / "rainy.png")).astype(int)
  for run in ("tiles", "onnx", "onnx_tiles"):
    out = np.asarray(Image.open(tmp_path / run / "rainy.png")).astype(int)
    assert np.abs(out - whole).max() <= 1, run
  path = export.export_onnx(str(tmp_path / "prenet"), str(tmp_path / "prenet.onnx"))
  ops = {node.op_type for node in onnx.load(path).graph.node}
  assert ops == {
    "Conv",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Mul",
    "Add",
    "Concat",
    "Transpose",
    "Clip",
    "Shape",
    "Gather",
    "Expand",
  }, ops
