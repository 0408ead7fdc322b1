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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import app, flags

from nasnet_jax import checkpointing, command_line
from nasnet_jax.models import create_model

JAX_EXPORT_FILE = checkpointing.JAX_EXPORT_FILE
PLATFORMS = ("cpu", "cuda", "tpu")


def save_params(directory: str, model_config: Mapping[str, Any], params: Any) -> None:
  """Writes the orbax checkpoint of an export (``params`` and ``model`` items)."""
  checkpointer = checkpointing.export_checkpointer()
  checkpointer.save(directory, args=ocp.args.Composite(
      params=ocp.args.StandardSave(params), model=ocp.args.JsonSave(dict(model_config))))


def export_function(model, params: Any,
                    platforms: Sequence[str] = PLATFORMS) -> jax.export.Exported:
  """The network with ``params`` baked in, for float32 (N, H, W, 3) of any N, H, W."""
  def derain(images):
    return jnp.clip(model.apply({"params": params}, images), 0.0, 1.0)
  shape = jax.export.symbolic_shape("n, h, w, 3")
  return jax.export.export(jax.jit(derain), platforms=tuple(platforms))(
      jax.ShapeDtypeStruct(shape, jnp.float32))


def load_exported(path: str) -> jax.export.Exported:
  """Reads a ``derain.jax_export`` file (or the export folder holding it)."""
  if os.path.isdir(path):
    path = os.path.join(path, JAX_EXPORT_FILE)
  with open(path, "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))


TRAINING_LOG_FILES = ("config.json", "metrics.jsonl")


def export(source: str, output: str, platforms: Sequence[str] = PLATFORMS,
           training_log: bool = False) -> str:
  """Exports the checkpoint at ``source`` (workdir, step folder or export) to ``output``.

  With no ``platforms`` only the orbax checkpoint (and model.json) is written. With
  ``training_log`` the workdir's ``config.json`` and ``metrics.jsonl`` are copied too (a
  workdir must be the source), so the export says how it was trained."""
  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(output):
    raise FileExistsError(f"--output={output} exists; choose a new folder (an export is "
                          "never written over)")
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
          raise FileNotFoundError(f"{path} is missing: --training_log needs --workdir to be "
                                  "a training workdir")
        shutil.copyfile(path, os.path.join(tmp, name))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's folder is private (0700); an export is not
    os.replace(tmp, output)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return output


FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Command-line flags, defined only when run as a program (not on import)."""
  flags.DEFINE_string("workdir", None, "Training workdir, checkpoint step folder or export.")
  flags.DEFINE_string("output", None, "New folder to write the export to.")
  flags.DEFINE_list("platforms", list(PLATFORMS), "Platforms of the jax.export artifact "
                    "(--platforms= : none, write the orbax checkpoint only).")
  flags.DEFINE_bool("training_log", False, "Also copy the workdir's config.json and "
                    "metrics.jsonl into the export.")
  flags.DEFINE_bool("verbose", False, "Also print INFO logs of orbax and JAX.")


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) > 1:
    command_line.fail(f"unexpected arguments {argv[1:]}", status=2)
  if not FLAGS.workdir or not FLAGS.output:
    command_line.fail("pass --workdir=DIR (or a step folder) and --output=EXPORT", status=2)
  out = command_line.run(
      lambda: export(FLAGS.workdir, FLAGS.output, FLAGS.platforms, FLAGS.training_log))
  artifact = (f" and {JAX_EXPORT_FILE} (jax.export, {','.join(FLAGS.platforms)})"
              if FLAGS.platforms else "")
  print(f"exported {FLAGS.workdir} to {out}: {checkpointing.EXPORT_CHECKPOINT}/ "
        f"(nasnet_jax.restore){artifact}")


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
