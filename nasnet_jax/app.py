"""``nasnet-derain-app``: a local web page that derains the photos you drop on it.

    nasnet-derain-app                                  # the shipped general model
    nasnet-derain-app --checkpoint=workdirs/synthetic --port=8080
    nasnet-derain-app --checkpoint=general.onnx        # ONNX Runtime

Drop one or more photos, press "Derain": a slider compares rainy and derained (pick the
photo in "Compare"), and "Derained photos" holds each result at full resolution and in
its input's format and bit depth (16-bit PNG/TIFF stay 16-bit), named ``NAME_derained``.
Photos larger than ``--tile`` go through exact tiles (the output equals the whole-image
run), so memory stays bounded. A file that cannot be read is named in the status line
and the others go on. The page is Gradio's (``pip install 'nasnet-jax[app]'``); it
listens on 127.0.0.1 only, unless ``--host`` says otherwise, and loads nothing from the
internet.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import numpy as np

from nasnet_jax import command_line, extras, image_io

# Side of the comparison previews (the downloads are full size).
PREVIEW_SIDE = 1600
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="nasnet-derain-app",
    description=__doc__.split("\n\n")[0].split(": ", 1)[1],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="\n\n".join(__doc__.split("\n\n")[1:]),
  )
  p.add_argument(
    "--checkpoint",
    default=None,
    help="training workdir, checkpoint step folder, export folder, or .onnx "
    "file (default: the general model shipped with nasnet-jax)",
  )
  p.add_argument(
    "--backend", choices=("auto", "jax", "onnxruntime"), default="auto", help="as for nasnet-derain"
  )
  p.add_argument(
    "--tile",
    type=int,
    default=512,
    help="photos larger than this (pixels) run in exact tiles (0: never)",
  )
  p.add_argument("--host", default="127.0.0.1", help="address to listen on")
  p.add_argument("--port", type=int, default=7860, help="port to listen on")
  p.add_argument(
    "--output_dir", default=None, help="where results are kept (default: a new temporary folder)"
  )
  return p


def _preview(rgb: np.ndarray, path: str) -> str:
  """An 8-bit PNG of ``rgb`` at most PREVIEW_SIDE pixels on a side, for the browser."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  image = image_io.to_rgb_uint8(rgb)
  picture = Image.fromarray(image)
  picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
  picture.save(path)
  return path


class DerainJob:
  """Derains uploaded files into ``output_dir``: the model's side of the page, usable (and
  tested) without a browser."""

  def __init__(self, derainer: Any, output_dir: str):
    self.derainer, self.output_dir = derainer, output_dir
    os.makedirs(output_dir, exist_ok=True)

  def __call__(self, paths: list[str], progress=None):
    """``paths`` -> (results, failures): results are dicts with the input ``name``, the
    full-size ``output`` file and the two ``previews``; failures are (name, reason)."""
    results, failures = [], []
    for i, path in enumerate(paths):
      name = os.path.basename(path)
      if progress is not None:
        progress(i / max(len(paths), 1), desc=f"derain {name} ({i + 1} of {len(paths)})")
      try:
        photo = image_io.read_photo(path)
        rainy = photo.rgb
        photo.rgb = self.derainer(photo.rgb)
        stem, ext = os.path.splitext(name)
        folder = tempfile.mkdtemp(prefix="job", dir=self.output_dir)
        output = os.path.join(folder, f"{stem}_derained{ext}")
        image_io.write_photo(output, photo)
        results.append(
          {
            "name": name,
            "output": output,
            "previews": (
              _preview(rainy, os.path.join(folder, "rainy_preview.png")),
              _preview(photo.rgb, os.path.join(folder, "derained_preview.png")),
            ),
          }
        )
      except Exception as e:  # pylint: disable=broad-except
        # The upload's temporary path means nothing to the user: name the file.
        reason = command_line.one_line(str(e) or type(e).__name__).replace(path, name)
        failures.append((name, reason.replace(f"{name}: ", "", 1)))
    if progress is not None:
      progress(1.0, desc="done")
    return results, failures


def status_text(results: list[dict], failures: list[tuple[str, str]]) -> str:
  lines = [f"Derained {len(results)} of {len(results) + len(failures)} photo(s)."]
  lines += [f"* Could not derain **{name}**: {reason}" for name, reason in failures]
  return "\n".join(lines)


def build(job: DerainJob, title: str):
  """(the Gradio page around ``job``, the keyword arguments for its ``launch``)."""
  gr = extras.require("gradio", "app", "nasnet-derain-app")
  # System fonts: the default theme would fetch its font from the internet.
  theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=["ui-monospace", "monospace"])
  # Gradio 6 takes the theme in launch(), Gradio 5 in Blocks().
  gradio6 = int(gr.__version__.split(".")[0]) >= 6
  launch = {"theme": theme} if gradio6 else {}
  with gr.Blocks(
    title="nasnet-jax: derain your photos",
    analytics_enabled=False,
    **({} if gradio6 else {"theme": theme}),
  ) as page:
    gr.Markdown(f"# Derain your photos\n{title}")
    with gr.Row():
      with gr.Column():
        uploads = gr.File(
          label="Rainy photos (PNG, JPEG, TIFF, WebP, BMP)",
          file_count="multiple",
          elem_id="uploads",
        )
        button = gr.Button("Derain", variant="primary", elem_id="derain")
        status = gr.Markdown(elem_id="status")
      with gr.Column():
        compare = gr.ImageSlider(label="Rainy | derained", type="filepath", elem_id="compare")
        choice = gr.Dropdown(label="Compare", choices=[], elem_id="choice")
        downloads = gr.File(
          label="Derained photos (full resolution)",
          file_count="multiple",
          interactive=False,
          elem_id="downloads",
        )
    previews = gr.State({})

    def derain(files, progress=gr.Progress()):  # noqa: B008 (gradio injects the tracker)
      paths = [f if isinstance(f, str) else f.name for f in (files or [])]
      if not paths:
        return None, gr.update(choices=[], value=None), None, "Drop photos first.", {}
      results, failures = job(paths, progress)
      for name, reason in failures:
        gr.Warning(f"Could not derain {name}: {reason}")
      shown = {r["name"]: r["previews"] for r in results}
      first = results[0]["name"] if results else None
      return (
        shown.get(first),
        gr.update(choices=list(shown), value=first),
        [r["output"] for r in results] or None,
        status_text(results, failures),
        shown,
      )

    button.click(derain, inputs=uploads, outputs=[compare, choice, downloads, status, previews])
    choice.change(lambda name, shown: shown.get(name), inputs=[choice, previews], outputs=compare)
  return page, launch


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  if args.tile < 0:
    command_line.print_error("--tile must be >= 0")
    return 2
  # Gradio reads these when it is imported: no usage analytics, no update check.
  os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
  from nasnet_jax import derain_command, inference  # pylint: disable=g-import-not-at-top

  options = argparse.Namespace(
    checkpoint=args.checkpoint,
    backend=args.backend,
    tile=args.tile,
    overlap=-1,
    ensemble=False,
    tile_batch=1,
    bf16=False,
  )
  output_dir = args.output_dir or tempfile.mkdtemp(prefix="nasnet-derain-app-")
  try:
    extras.require("gradio", "app", "nasnet-derain-app")
    derainer = derain_command.build_derainer(options)
  except command_line.USER_ERRORS as e:
    command_line.print_error(e)
    return 1
  title = (
    f"Model: {args.checkpoint or 'the general model shipped with nasnet-jax'}; "
    f"{'ONNX Runtime' if isinstance(derainer, inference.OnnxDerainer) else 'JAX'}. "
    "Results are kept in " + output_dir + "."
  )
  page, launch = build(DerainJob(derainer, output_dir), title)
  print(
    f"nasnet-derain-app: open http://{args.host}:{args.port} in a browser (Ctrl+C stops it)",
    flush=True,
  )
  page.queue().launch(
    server_name=args.host,
    server_port=args.port,
    share=False,
    inbrowser=False,
    allowed_paths=[output_dir],
    show_error=True,
    **launch,
  )
  return 0


def entry_point() -> None:
  sys.exit(main())


if __name__ == "__main__":
  entry_point()
