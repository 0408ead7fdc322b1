"""``nasnet-derain``: derain your own photos, with the shipped model or your checkpoint.

    nasnet-derain photo.jpg more/ 'shots/*.png' --output_dir=out     # the shipped model
    nasnet-derain --checkpoint=workdirs/demo photo.jpg --output_dir=out
    nasnet-derain --checkpoint=EXPORT big.tif --output_dir=out --tile=512 --ensemble
    nasnet-derain --backend=onnxruntime photos/ --output_dir=out     # ONNX Runtime
    nasnet-derain --checkpoint=model.onnx photos/ --output_dir=out   # an ONNX export

INPUT is a file, a folder (its images, recursively; sub-folders are kept in OUT) or a glob.
PNG, JPEG, TIFF, WebP and BMP; 8- and 16-bit (16-bit PNG/TIFF written back as 16-bit);
grayscale and RGBA (alpha kept); EXIF orientation applied (the output is upright). Each
output has its input's file name and format. An output never replaces an input, and a
file that fails is reported while the rest go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

from nasnet_jax import command_line, image_io, storage

BACKENDS = ("auto", "jax", "onnxruntime")
AUTO_RULE = (
  "onnxruntime for a .onnx file, and on a CPU when the onnx extra is installed "
  "(faster than XLA:CPU there: benchmarks/RESULTS.md); otherwise jax"
)


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="nasnet-derain",
    description=__doc__.split("\n\n")[0].split(": ", 1)[1],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="\n\n".join(__doc__.split("\n\n")[1:]),
  )
  p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
  p.add_argument(
    "--checkpoint",
    default=None,
    help="training workdir, checkpoint step folder, export folder, or .onnx "
    "file (default: the general model shipped with nasnet-jax)",
  )
  p.add_argument(
    "--backend",
    choices=BACKENDS,
    default="auto",
    help="jax (XLA), onnxruntime (the network exported to ONNX, run by ONNX "
    "Runtime; needs the onnx extra), or auto: " + AUTO_RULE,
  )
  p.add_argument("--output_dir", required=True, help="where the derained images go")
  p.add_argument(
    "--tile", type=int, default=0, help="run in tiles of this size (pixels; 0: whole images)"
  )
  p.add_argument(
    "--overlap",
    type=int,
    default=-1,
    help="context around each tile (-1: the network's receptive field, which makes tiles exact)",
  )
  p.add_argument(
    "--ensemble",
    action="store_true",
    help="average the 8 flips/rotations (8x slower, slightly better)",
  )
  p.add_argument("--bf16", action="store_true", help="compute in bfloat16")
  p.add_argument("--verbose", action="store_true", help="also print INFO logs of orbax and JAX")
  p.add_argument("--tile_batch", type=int, default=1, help="tiles run together")
  p.add_argument(
    "--compilation_cache",
    default=os.environ.get("NASNET_COMPILATION_CACHE"),
    metavar="DIR",
    help="keep compiled programs (one per image-size bucket) in DIR, so the "
    "next run skips compiling them (--backend=jax; default: "
    "$NASNET_COMPILATION_CACHE; none)",
  )
  return p


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
  """([(input path, output path relative to OUT)], [(input, error)]) in argument order."""
  found, errors = [], []
  for arg in inputs:
    if os.path.isdir(arg):
      files = []
      for folder, dirs, names in os.walk(arg):
        dirs.sort()
        files += [os.path.join(folder, n) for n in sorted(names) if image_io.is_image_file(n)]
      if not files:
        errors.append((arg, "folder holds no image (png, jpg, tif, webp, bmp)"))
      found += [(f, os.path.relpath(f, arg)) for f in files]
    elif os.path.isfile(arg):
      found.append((arg, os.path.basename(arg)))
    elif glob.has_magic(arg):
      matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
      if not matches:
        errors.append((arg, "matches no file"))
      found += [(m, os.path.basename(m)) for m in matches]
    else:
      errors.append((arg, "does not exist"))
  return found, errors


def _hyphenated_option(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
  """The first argument spelt like an option with hyphens for underscores, said as a fix."""
  options = parser._option_string_actions  # pylint: disable=protected-access
  for arg in argv:
    name = arg.split("=", 1)[0]
    fixed = "--" + name[2:].replace("-", "_")
    if name.startswith("--") and name not in options and fixed in options:
      return f"unknown option {name}: the options are spelt with underscores, {fixed}"
  return None


def run(argv: list[str] | None = None) -> int:
  """The CLI; returns the exit status."""
  parser = _parser()
  argv = sys.argv[1:] if argv is None else argv
  if (message := _hyphenated_option(parser, argv)) is not None:
    command_line.print_error(message)
    return 2
  args = parser.parse_args(argv)
  if args.tile < 0 or args.tile_batch < 1:
    command_line.print_error("--tile must be >= 0 and --tile_batch >= 1")
    return 2
  found, errors = collect_inputs(args.inputs)
  failures = []

  def fail(path: str, reason: str, write=print) -> None:
    failures.append(path)
    reason = command_line.one_line(reason)
    # Messages of the image readers already name the file: say it once.
    write(f"FAILED {reason}" if path in reason else f"FAILED {path}: {reason}", file=sys.stderr)

  for path, reason in errors:
    fail(path, reason)
  # Decide every output name first: never an input, never two inputs to one output.
  inputs = {os.path.realpath(p) for p, _ in found}
  jobs, claimed = [], {}
  for path, rel in found:
    out = os.path.join(args.output_dir, rel)
    real_out = os.path.realpath(out)
    if real_out in inputs:
      fail(path, f"its output {out} would overwrite an input; choose another --output_dir")
    elif real_out in claimed:
      fail(
        path,
        f"has the same output name as {claimed[real_out]}; derain them into "
        "different --output_dir folders",
      )
    else:
      claimed[real_out] = path
      jobs.append((path, out))
  if not jobs:
    command_line.print_error("nothing to derain")
    return 1
  try:  # a read-only or full output disk: one line, before the model is loaded
    for folder in sorted({os.path.dirname(out) for _, out in jobs}):
      storage.check_writable(folder, "--output_dir")
  except command_line.USER_ERRORS as e:
    command_line.print_error(e)
    return 1

  command_line.quiet(args.verbose)
  # Imported here so that --help and argument errors answer at once.
  import tqdm  # pylint: disable=g-import-not-at-top

  from nasnet_jax import inference  # pylint: disable=g-import-not-at-top

  if args.compilation_cache:
    inference.use_compilation_cache(args.compilation_cache)
  try:
    derainer = build_derainer(args)
  except command_line.USER_ERRORS as e:
    command_line.print_error(e)
    return 1
  start, done = time.time(), 0
  bar = tqdm.tqdm(jobs, unit="image", desc="derain", dynamic_ncols=True)
  for path, out in bar:
    try:
      photo = image_io.read_photo(path)
      photo.rgb = derainer(photo.rgb)
    except Exception as e:  # pylint: disable=broad-except
      fail(path, str(e) or type(e).__name__, write=bar.write)
      continue
    try:
      image_io.write_photo(out, photo)
    except Exception as e:  # pylint: disable=broad-except
      disk = storage.as_storage_error(e, os.path.dirname(out), f"writing {out}", f"{done} written")
      if disk is not None:  # every image after it would fail the same way: stop here
        bar.close()  # (image_io writes through a temporary file: no half-written output)
        command_line.print_error(disk)
        return 1
      fail(path, str(e) or type(e).__name__, write=bar.write)
      continue
    done += 1
  elapsed = time.time() - start
  print(
    f"derained {done} of {done + len(failures)} image(s) into {args.output_dir} in "
    f"{elapsed:.1f} s "
    f"({done / max(elapsed, 1e-9):.2f} images/s)"
    + (f"; {len(failures)} failed" if failures else "")
  )
  return 1 if failures else 0


def build_derainer(args):
  """The Derainer (JAX) or OnnxDerainer (ONNX Runtime) that the parsed ``args`` ask for
  (``checkpoint``, ``backend``, ``tile``, ``overlap``, ``ensemble``, ``tile_batch``,
  ``bf16``); also used by ``nasnet-derain-app``."""
  import nasnet_jax  # pylint: disable=g-import-not-at-top
  from nasnet_jax import inference  # pylint: disable=g-import-not-at-top

  onnx_file = bool(args.checkpoint) and args.checkpoint.endswith(".onnx")
  backend = args.backend
  if backend == "auto":
    backend = "onnxruntime" if onnx_file or (not args.bf16 and _onnx_is_faster()) else "jax"
  if backend == "onnxruntime" and args.bf16:
    raise ValueError("--bf16 is for --backend=jax; the ONNX export computes in float32")
  options = dict(
    tile=args.tile or None,
    overlap=None if args.overlap < 0 else args.overlap,
    ensemble=args.ensemble,
    tile_batch=args.tile_batch,
  )
  if backend == "onnxruntime" and not onnx_file:
    from nasnet_jax import export  # pylint: disable=g-import-not-at-top

    try:
      return _exported_to_onnx(args, inference, options)
    except export.OnnxConversionError as e:
      if args.backend != "auto":
        raise
      print(f"running it with JAX: {command_line.one_line(e)}", flush=True)
      backend = "jax"
  if backend == "jax":
    if onnx_file:
      raise ValueError(
        f"--checkpoint={args.checkpoint} is an ONNX file: run it with --backend=onnxruntime"
      )
    if args.checkpoint:
      model, params = nasnet_jax.restore(args.checkpoint)
    else:
      model, params = nasnet_jax.pretrained()
      print(
        "using the shipped general model (nasnet_jax.pretrained(); see --checkpoint)", flush=True
      )
    return inference.Derainer(model, params, dtype="bfloat16" if args.bf16 else None, **options)
  return inference.OnnxDerainer(args.checkpoint, **options)


def _onnx_is_faster() -> bool:
  """ONNX Runtime on a CPU, where it was measured faster than XLA:CPU (docs/deployment.md, "ONNX"),
  if the onnx extra (jax2onnx and onnxruntime) is installed."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  return jax.default_backend() == "cpu" and all(
    importlib.util.find_spec(m) for m in ("jax2onnx", "onnxruntime")
  )


def _exported_to_onnx(args, inference, options):
  """An OnnxDerainer on the checkpoint (or the shipped model) exported to ONNX now (a few
  seconds; ``python -m nasnet_jax.export --format=onnx`` writes the file once)."""
  import tempfile  # pylint: disable=g-import-not-at-top

  from nasnet_jax import export, pretrained_models  # pylint: disable=g-import-not-at-top

  source = args.checkpoint or pretrained_models.pretrained_path()
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export_onnx(source, os.path.join(tmp, "model.onnx"))
    print(
      f"running {'the shipped general model' if not args.checkpoint else source} with "
      "ONNX Runtime (exported to ONNX just now; --backend=jax for XLA)",
      flush=True,
    )
    return inference.OnnxDerainer(path, **options)


def main() -> None:
  sys.exit(run())


if __name__ == "__main__":
  main()
