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

import os

import jax
from absl import app, flags
from ml_collections import config_flags

from nasnet_jax import command_line, evaluate_lib, metrics

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


def run():
  result = evaluate_lib.evaluate(
    evaluate_lib.EvaluationRequest(
      config=FLAGS.config,
      workdir=FLAGS.workdir,
      pretrained=FLAGS.pretrained,
      split=FLAGS.split,
      results_dir=FLAGS.results_dir,
      target_dir=FLAGS.target_dir,
      input_dir=FLAGS.input_dir,
      output_dir=FLAGS.output_dir,
      protocols=FLAGS.protocols,
      save_images=FLAGS.save_images,
      max_images=FLAGS.max_images,
    )
  )
  if jax.process_index() == 0:  # every process holds every row; one prints
    print(result.table())
    print(f"wrote {os.path.join(result.output_dir, 'per_image.csv')} and summary.json")


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) > 1:
    command_line.fail(f"unexpected arguments {argv[1:]}; pass settings as flags", status=2)
  command_line.initialize_distributed(FLAGS)
  command_line.run(run)


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
