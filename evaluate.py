"""Scores a trained model on a dataset split or on real rainy photos, or any method's saved
outputs.

  # the latest checkpoint in DIR on config.data's eval split
  python evaluate.py --config=configs/synthetic.py --workdir=DIR [--save_images]
  # the general model shipped inside the package (nasnet_jax.pretrained())
  python evaluate.py --config=configs/synthetic.py --pretrained
  # saved outputs against ground truth, paired by file name (no model needed)
  python evaluate.py --results_dir=R --target_dir=T [--input_dir=RAINY]
  # real rain, no ground truth: saved outputs, or a model on a folder of photos
  python evaluate.py --results_dir=R [--input_dir=RAINY] [--protocols=niqe,brisque]
  python evaluate.py --pretrained --input_dir=RAINY [--save_images]
  python evaluate.py --config=C --workdir=DIR --split=real_rain   # config.eval.real_rain_dir

Without ground truth the protocols are the no-reference niqe and brisque (the default
there; lower is better). Inference options come from the config: --config.eval.ensemble=True
(x8 self-ensemble), --config.eval.tile=512 [--config.eval.overlap=N],
--config.eval.dtype=bfloat16.

Prints a table (input vs output, per protocol and rain type) and writes per_image.csv and
summary.json to --output_dir (default DIR/eval_<split>, pretrained_eval_<split> or
R_scores; real_rain for a folder of photos).

A model's images are split over this process's devices and, started on several hosts
(--distributed, or --coordinator_address/--num_processes/--process_id), over the hosts;
process 0 prints and writes the table, the same as on one device.
"""

import itertools
import os

import jax
from absl import app, flags
from ml_collections import config_flags

from nasnet_jax import command_line, evaluation, hosts, metrics, storage

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Config naming the dataset and protocols.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Training workdir (or checkpoint folder) to score.")
flags.DEFINE_bool(
  "pretrained", False, "Score the general model shipped with nasnet-jax instead of a --workdir."
)
flags.DEFINE_string("split", None, "Dataset split (default: config.data.eval_split).")
flags.DEFINE_string("results_dir", None, "Folder of derained images to score.")
flags.DEFINE_string(
  "target_dir", None, "Folder of ground-truth images (same names); leave out for real rain."
)
flags.DEFINE_string(
  "input_dir",
  None,
  "Folder of the rainy inputs: with --results_dir scored beside them (same names); with "
  "--workdir or --pretrained derained and scored without ground truth.",
)
flags.DEFINE_string("output_dir", None, "Where to write per_image.csv and summary.json.")
flags.DEFINE_list(
  "protocols",
  None,
  f"Protocols among {metrics.PROTOCOLS} (against ground truth; default config.eval.protocols, "
  f"else y8,rgb) and {metrics.NO_REFERENCE_PROTOCOLS} (no reference; the default without "
  "ground truth).",
)
flags.DEFINE_bool("save_images", False, "Also write the derained PNGs.")
flags.DEFINE_integer("max_images", 0, "Score at most this many images (0: all).")
flags.DEFINE_bool("verbose", False, "Also print INFO logs of TFDS, orbax and JAX.")
command_line.define_distributed_flags()


def _protocols(ground_truth: bool):
  if FLAGS.protocols:
    protocols = FLAGS.protocols
  elif not ground_truth:
    protocols = list(metrics.NO_REFERENCE_PROTOCOLS)
  elif FLAGS.config is not None:
    protocols = list(FLAGS.config.eval.protocols)
  else:
    protocols = ["y8", "rgb"]
  known = metrics.PROTOCOLS + metrics.NO_REFERENCE_PROTOCOLS
  bad = [p for p in protocols if p not in known]
  if bad:
    raise ValueError(f"--protocols has unknown {bad}; choose from {known}")
  full, _ = evaluation.split_protocols(protocols)
  if full and not ground_truth:
    raise ValueError(
      f"--protocols={','.join(full)} compare with ground truth, which real rain has not: "
      f"pass --target_dir=GT, or use --protocols={','.join(metrics.NO_REFERENCE_PROTOCOLS)}"
    )
  return protocols


def _score_folders():
  """Saved outputs in --results_dir, against --target_dir or without ground truth."""
  protocols = _protocols(ground_truth=bool(FLAGS.target_dir))
  output_dir = FLAGS.output_dir or FLAGS.results_dir.rstrip("/") + "_scores"
  storage.check_writable(output_dir, "--output_dir")  # a read-only disk: before scoring
  rows = evaluation.evaluate_folders(
    FLAGS.results_dir, FLAGS.target_dir, protocols, FLAGS.input_dir
  )
  extra = {"results_dir": FLAGS.results_dir, "target_dir": FLAGS.target_dir}
  if FLAGS.input_dir:
    extra["input_dir"] = FLAGS.input_dir
  return rows, output_dir, extra, protocols


def _score_model():
  """The model (--workdir or --pretrained) on a dataset split or a folder of real photos."""
  config = FLAGS.config
  split = FLAGS.split or (config.data.eval_split if config is not None else None)
  photos = FLAGS.input_dir
  if split == evaluation.REAL_RAIN_SPLIT and not photos:
    photos = config.eval.get("real_rain_dir") if config is not None else None
    if not photos:
      raise ValueError(
        f"--split={evaluation.REAL_RAIN_SPLIT} derains the photos in "
        "config.eval.real_rain_dir: set it (--config.eval.real_rain_dir=DIR) or pass --input_dir"
      )
  if not (FLAGS.workdir or FLAGS.pretrained) or (config is None and not photos):
    raise ValueError(
      "pass --config and --workdir (or --pretrained) to score a model, "
      "--workdir (or --pretrained) and --input_dir to score it on real rainy photos, "
      "--results_dir and --target_dir to score saved outputs, or --results_dir alone "
      "for saved outputs of real rain"
    )
  if FLAGS.workdir and FLAGS.pretrained:
    raise ValueError("pass either --workdir or --pretrained, not both")
  import nasnet_jax  # pylint: disable=g-import-not-at-top

  protocols = _protocols(ground_truth=not photos)
  if photos:
    split = evaluation.REAL_RAIN_SPLIT
    examples = evaluation.folder_examples(photos)
    if FLAGS.max_images:
      examples = itertools.islice(examples, FLAGS.max_images)
  if FLAGS.pretrained:
    model, params = nasnet_jax.pretrained()
    default_output = f"pretrained_eval_{split}"
  else:
    model, params = nasnet_jax.restore(FLAGS.workdir)
    default_output = os.path.join(FLAGS.workdir, f"eval_{split}")
  extra = {"workdir": FLAGS.workdir or "pretrained:general", "split": split}
  if photos:
    extra["input_dir"] = photos
  else:
    from nasnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top

    source = pipeline.get_data_source(
      config.data.name, split, config.data.data_dir, config.data.manual_dir
    )
    examples = pipeline.eval_examples(source, FLAGS.max_images or None)
    extra["dataset"] = config.data.name
  output_dir = FLAGS.output_dir or default_output
  # A read-only or full disk, said before scoring (every host writes with --save_images).
  hosts.check_on_every_host(
    lambda: storage.check_writable(output_dir, "--output_dir"), "--output_dir"
  )
  options = evaluation.inference_options(config.eval if config is not None else {})
  rows = evaluation.evaluate_model(
    model,
    params,
    examples,
    protocols,
    output_dir=os.path.join(output_dir, "images") if FLAGS.save_images else None,
    options=options,
  )
  extra["inference"] = options
  return rows, output_dir, extra, protocols


def run():
  if FLAGS.target_dir and not FLAGS.results_dir:
    raise ValueError("--target_dir needs --results_dir, the outputs to score against it")
  if FLAGS.results_dir:
    rows, output_dir, extra, protocols = _score_folders()
  else:
    rows, output_dir, extra, protocols = _score_model()
  if jax.process_index() != 0:  # every process holds every row; one writes
    return
  summary = evaluation.summarize(rows)
  evaluation.write_report(rows, summary, output_dir, {**extra, "protocols": protocols})
  print(evaluation.format_table(summary, protocols))
  print(f"wrote {os.path.join(output_dir, 'per_image.csv')} and summary.json")


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) > 1:
    command_line.fail(f"unexpected arguments {argv[1:]}; pass settings as flags", status=2)
  command_line.initialize_distributed(FLAGS)
  command_line.run(run)


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
