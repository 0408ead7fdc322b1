"""Exports a trained model for inference: parameters only, and a jax.export artifact.

    python -m nasnet_jax.export --workdir=workdirs/demo --output=exports/demo

writes, atomically (a temporary folder renamed at the end; an existing EXPORT is never
replaced):

* ``EXPORT/checkpoint/``: an orbax checkpoint with two items, ``params`` (the inference
  parameters, no optimizer state) and ``model`` (the model config, JSON).
  ``nasnet_jax.restore(EXPORT)`` and ``nasnet-derain --checkpoint=EXPORT`` read it.
* ``EXPORT/derain.jax_export``: the network with its parameters as a serialized
  ``jax.export.Exported`` for CPU, CUDA and TPU, with symbolic batch, height and width. It
  maps float32 (N, H, W, 3) in [0, 1] to the derained images, clipped to [0, 1], exactly
  as ``nasnet_jax`` computes them at that size. It needs only ``jax`` (and ``flatbuffers``,
  which jax uses to read the file)::

      import jax, numpy as np
      with open("EXPORT/derain.jax_export", "rb") as f:
        derain = jax.export.deserialize(bytearray(f.read()))
      out = np.asarray(derain.call(images))     # images: float32 (N, H, W, 3) in [0, 1]

* ``EXPORT/model.json``: the model config, for reading by eye.

With ``--format=onnx`` it writes one ONNX file instead (``export_onnx``; needs the
``onnx`` extra, ``pip install 'nasnet-jax[onnx]'``)::

    python -m nasnet_jax.export --format=onnx --pretrained --output=general.onnx
    python -m nasnet_jax.export --format=onnx --workdir=workdirs/demo --output=demo.onnx

Input ``image``: float32 (N, H, W, 3), RGB in [0, 1], NHWC, any N, H and W (symbolic).
Output ``derained``: the same shape, clipped to [0, 1]. Nothing else is needed: NASNet's
convolutions are all "same" and stride 1, so any size runs as it is. ``docs/onnx.md`` has
the details and an example with ONNX Runtime alone.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import app, flags

from nasnet_jax import checkpointing, command_line, extras
from nasnet_jax.models import create_model

JAX_EXPORT_FILE = checkpointing.JAX_EXPORT_FILE
PLATFORMS = ("cpu", "cuda", "tpu")
FORMATS = ("jax", "onnx")
# Opset 17 (2022): NASNet's graph needs only Conv, Relu, Sigmoid, Mul, Add, Concat,
# Transpose and Clip (Sub and Div with input normalisation; PReNet's also Tanh, Shape,
# Gather, Expand), so an old opset keeps it loadable by every current runtime (ONNX
# Runtime on desktop, mobile and web, OpenVINO, TensorRT).
ONNX_OPSET = 17
ONNX_INPUT, ONNX_OUTPUT = "image", "derained"
# Keys of the ONNX file's metadata_props that nasnet_jax reads back (OnnxDerainer).
ONNX_MODEL_KEY = "nasnet_jax.model"
ONNX_RADIUS_KEY = "nasnet_jax.receptive_field_radius"


def save_params(directory: str, model_config: Mapping[str, Any], params: Any) -> None:
  """Writes the orbax checkpoint of an export (``params`` and ``model`` items)."""
  checkpointer = checkpointing.export_checkpointer()
  checkpointer.save(
    directory,
    args=ocp.args.Composite(
      params=ocp.args.StandardSave(params), model=ocp.args.JsonSave(dict(model_config))
    ),
  )


def export_function(
  model, params: Any, platforms: Sequence[str] = PLATFORMS
) -> jax.export.Exported:
  """The network with ``params`` baked in, for float32 (N, H, W, 3) of any N, H, W."""

  def derain(images):
    return jnp.clip(model.apply({"params": params}, images), 0.0, 1.0)

  shape = jax.export.symbolic_shape("n, h, w, 3")
  return jax.export.export(jax.jit(derain), platforms=tuple(platforms))(
    jax.ShapeDtypeStruct(shape, jnp.float32)
  )


def load_exported(path: str) -> jax.export.Exported:
  """Reads a ``derain.jax_export`` file (or the export folder holding it)."""
  if os.path.isdir(path):
    path = os.path.join(path, JAX_EXPORT_FILE)
  with open(path, "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))


class OnnxConversionError(ValueError):
  """The converter cannot express an operation of the network in ONNX."""


def _failed_operation(error: BaseException) -> str | None:
  """The JAX primitive jax2onnx was converting when ``error`` was raised (the innermost
  traceback frame holding a jaxpr equation ``eqn``), or None."""
  name, tb = None, error.__traceback__
  while tb is not None:
    eqn = tb.tb_frame.f_locals.get("eqn")
    primitive = getattr(eqn, "primitive", None)
    if primitive is not None:
      name = getattr(primitive, "name", None) or name
    tb = tb.tb_next
  return name


def onnx_model(
  model, params, model_config: Mapping[str, Any] | None = None, opset: int = ONNX_OPSET
):
  """The network with ``params`` baked in, as an ``onnx.ModelProto``: input ``image``
  float32 (N, H, W, 3) in [0, 1] with symbolic N, H and W, output ``derained`` of the same
  shape, clipped to [0, 1]. Converted with jax2onnx from the plain ``lax`` convolutions
  (``conv_impl="xla"``; the CPU forms are XLA:CPU speed-ups). Raises
  ``OnnxConversionError`` naming the operation the converter cannot express."""
  jax2onnx = extras.require("jax2onnx", "onnx", "ONNX export")
  import logging as std_logging  # pylint: disable=g-import-not-at-top

  # jax2onnx logs a warning for every optional plugin whose library (equinox, ...) it
  # cannot import; none of them is needed here.
  std_logging.getLogger("jax2onnx").setLevel(std_logging.ERROR)
  network = model.clone(conv_impl="xla")

  def derain(images):
    return jnp.clip(network.apply({"params": params}, images), 0.0, 1.0)

  try:
    proto = jax2onnx.to_onnx(
      derain,
      [("N", "H", "W", 3)],
      model_name=type(model).__name__,
      opset=opset,
      input_names=[ONNX_INPUT],
      output_names=[ONNX_OUTPUT],
    )
  except Exception as e:  # pylint: disable=broad-except
    operation = _failed_operation(e)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise OnnxConversionError(
      f"jax2onnx {importlib.metadata.version('jax2onnx')} cannot convert "
      f"{type(model).__name__} to ONNX with symbolic sizes"
      f"{f': its {operation!r} operation' if operation else ''} ({type(e).__name__}: "
      f"{first}); export it with --format=jax instead"
    ) from e
  config = dict(model_config) if model_config is not None else {"name": type(model).__name__}
  radius = model.receptive_field_radius
  for key, value in (
    (ONNX_MODEL_KEY, json.dumps(config)),
    (ONNX_RADIUS_KEY, "" if radius is None else str(radius)),
  ):
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value
  proto.doc_string = (
    f"nasnet_jax {type(model).__name__}: input '{ONNX_INPUT}' float32 "
    f"(N, H, W, 3) RGB in [0, 1], any N, H, W; output '{ONNX_OUTPUT}' the "
    "same shape, clipped to [0, 1]."
  )
  return proto


def export_onnx(source: str, output: str, opset: int = ONNX_OPSET) -> str:
  """Writes the checkpoint at ``source`` (workdir, step folder or export) as one ONNX
  file ``output`` (``onnx_model``); atomically, and never over an existing file."""
  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(output):
    raise FileExistsError(
      f"--output={output} exists; choose a new file name (an export is never written over)"
    )
  model_config, params = checkpointing.restore_config_and_params(source)
  proto = onnx_model(create_model(model_config), params, model_config, opset)
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp", dir=parent)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(proto.SerializeToString())
    _publish(tmp, output, 0o666)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return output


def _publish(tmp: str, output: str, mode: int) -> None:
  """Renames the finished ``tmp`` (a file or folder from mkstemp/mkdtemp, which are
  private: 0600/0700) to ``output`` with the permissions ``mode`` under the umask, as any
  new file gets; an export is not private."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, mode & ~umask)
  os.replace(tmp, output)


TRAINING_LOG_FILES = ("config.json", "metrics.jsonl")


def export(
  source: str, output: str, platforms: Sequence[str] = PLATFORMS, training_log: bool = False
) -> str:
  """Exports the checkpoint at ``source`` (workdir, step folder or export) to ``output``.

  With no ``platforms`` only the orbax checkpoint (and model.json) is written. With
  ``training_log`` the workdir's ``config.json`` and ``metrics.jsonl`` are copied too (a
  workdir must be the source), so the export says how it was trained."""
  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(output):
    raise FileExistsError(
      f"--output={output} exists; choose a new folder (an export is never written over)"
    )
  model_config, params = checkpointing.restore_config_and_params(source)
  model = create_model(model_config)
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.tmp", dir=parent)
  try:
    save_params(os.path.join(tmp, checkpointing.EXPORT_CHECKPOINT), model_config, params)
    if platforms:
      with open(os.path.join(tmp, JAX_EXPORT_FILE), "wb") as f:
        f.write(export_function(model, params, platforms).serialize())
    with open(os.path.join(tmp, "model.json"), "w") as f:
      json.dump(dict(model_config), f, indent=2)
    if training_log:
      for name in TRAINING_LOG_FILES:
        path = os.path.join(source, name)
        if not os.path.isfile(path):
          raise FileNotFoundError(
            f"{path} is missing: --training_log needs --workdir to be a training workdir"
          )
        shutil.copyfile(path, os.path.join(tmp, name))
    _publish(tmp, output, 0o777)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return output


FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Command-line flags, defined only when run as a program (not on import)."""
  flags.DEFINE_string("workdir", None, "Training workdir, checkpoint step folder or export.")
  flags.DEFINE_bool(
    "pretrained", False, "Export the general model shipped with nasnet-jax (instead of --workdir)."
  )
  flags.DEFINE_string(
    "output", None, "New folder (--format=jax) or file (--format=onnx) to write the export to."
  )
  flags.DEFINE_enum(
    "format",
    "jax",
    FORMATS,
    "jax: a folder with the orbax checkpoint and "
    "a jax.export artifact; onnx: one ONNX file (needs the onnx extra).",
  )
  flags.DEFINE_integer("opset", ONNX_OPSET, "ONNX opset of --format=onnx.")
  flags.DEFINE_list(
    "platforms",
    list(PLATFORMS),
    "Platforms of the jax.export artifact (--platforms= : none, write the orbax checkpoint only).",
  )
  flags.DEFINE_bool(
    "training_log", False, "Also copy the workdir's config.json and metrics.jsonl into the export."
  )
  flags.DEFINE_bool("verbose", False, "Also print INFO logs of orbax and JAX.")


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) > 1:
    command_line.fail(f"unexpected arguments {argv[1:]}", status=2)
  if bool(FLAGS.workdir) == FLAGS.pretrained or not FLAGS.output:
    command_line.fail(
      "pass --workdir=DIR (or a step folder) or --pretrained, and --output=EXPORT", status=2
    )
  if FLAGS.pretrained:
    from nasnet_jax import pretrained_models  # pylint: disable=g-import-not-at-top

    FLAGS.workdir = pretrained_models.pretrained_path()
  if FLAGS.format == "onnx":
    out = command_line.run(lambda: export_onnx(FLAGS.workdir, FLAGS.output, FLAGS.opset))
    print(
      f"exported {FLAGS.workdir} to {out}: ONNX opset {FLAGS.opset}, input "
      f"'{ONNX_INPUT}' float32 (N, H, W, 3) in [0, 1], output '{ONNX_OUTPUT}'"
    )
    return
  out = command_line.run(
    lambda: export(FLAGS.workdir, FLAGS.output, FLAGS.platforms, FLAGS.training_log)
  )
  artifact = (
    f" and {JAX_EXPORT_FILE} (jax.export, {','.join(FLAGS.platforms)})" if FLAGS.platforms else ""
  )
  print(
    f"exported {FLAGS.workdir} to {out}: {checkpointing.EXPORT_CHECKPOINT}/ "
    f"(nasnet_jax.restore){artifact}"
  )


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
