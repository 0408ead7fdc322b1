"""Scores a trained model on a dataset split, or any method's saved outputs.

  # the latest checkpoint in DIR on config.data's eval split
  python evaluate.py --config=configs/synthetic.py --workdir=DIR [--save_images]
  # the general model shipped inside the package (nasnet_jax.pretrained())
  python evaluate.py --config=configs/synthetic.py --pretrained
  # saved outputs against ground truth, paired by file name (no model needed)
  python evaluate.py --results_dir=R --target_dir=T [--input_dir=RAINY]

Inference options come from the config: --config.eval.ensemble=True (x8 self-ensemble),
--config.eval.tile=512 [--config.eval.overlap=N], --config.eval.dtype=bfloat16.

Prints a table (input vs output, per protocol and rain type) and writes per_image.csv and
summary.json to --output_dir (default DIR/eval_<split>, pretrained_eval_<split> or
R_scores).

A model's images are split over this process's devices and, started on several hosts
(--distributed, or --coordinator_address/--num_processes/--process_id), over the hosts;
process 0 prints and writes the table, the same as on one device.
"""

import os

import jax
from absl import app, flags
from ml_collections import config_flags

from nasnet_jax import command_line, evaluation, metrics

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
flags.DEFINE_string("target_dir", None, "Folder of ground-truth images (same names).")
flags.DEFINE_string("input_dir", None, "Optional folder of the rainy inputs (same names).")
flags.DEFINE_string("output_dir", None, "Where to write per_image.csv and summary.json.")
flags.DEFINE_list(
  "protocols",
  None,
  f"Protocols among {metrics.PROTOCOLS} (default: config.eval.protocols, else y8,rgb).",
)
flags.DEFINE_bool("save_images", False, "Also write the derained PNGs.")
flags.DEFINE_integer("max_images", 0, "Score at most this many images (0: all).")
flags.DEFINE_bool("verbose", False, "Also print INFO logs of TFDS, orbax and JAX.")
command_line.define_distributed_flags()


def _protocols():
  if FLAGS.protocols:
    protocols = FLAGS.protocols
  elif FLAGS.config is not None:
    protocols = list(FLAGS.config.eval.protocols)
  else:
    protocols = ["y8", "rgb"]
  bad = [p for p in protocols if p not in metrics.PROTOCOLS]
  if bad:
    raise ValueError(f"--protocols has unknown {bad}; choose from {metrics.PROTOCOLS}")
  return protocols


def run():
  protocols = _protocols()
  if FLAGS.results_dir or FLAGS.target_dir:
    if not (FLAGS.results_dir and FLAGS.target_dir):
      raise ValueError("--results_dir and --target_dir go together")
    rows = evaluation.evaluate_folders(
      FLAGS.results_dir, FLAGS.target_dir, protocols, FLAGS.input_dir
    )
    output_dir = FLAGS.output_dir or FLAGS.results_dir.rstrip("/") + "_scores"
    extra = {"results_dir": FLAGS.results_dir, "target_dir": FLAGS.target_dir}
  else:
    if not ((FLAGS.workdir or FLAGS.pretrained) and FLAGS.config):
      raise ValueError(
        "pass --config and --workdir (or --pretrained) to score a model, or "
        "--results_dir and --target_dir to score saved outputs"
      )
    if FLAGS.workdir and FLAGS.pretrained:
      raise ValueError("pass either --workdir or --pretrained, not both")
    import nasnet_jax  # pylint: disable=g-import-not-at-top
    from nasnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top

    config = FLAGS.config
    split = FLAGS.split or config.data.eval_split
    if FLAGS.pretrained:
      model, params = nasnet_jax.pretrained()
      default_output = f"pretrained_eval_{split}"
    else:
      model, params = nasnet_jax.restore(FLAGS.workdir)
      default_output = os.path.join(FLAGS.workdir, f"eval_{split}")
    source = pipeline.get_data_source(
      config.data.name, split, config.data.data_dir, config.data.manual_dir
    )
    output_dir = FLAGS.output_dir or default_output
    examples = pipeline.eval_examples(source, FLAGS.max_images or None)
    options = evaluation.inference_options(config.eval)
    rows = evaluation.evaluate_model(
      model,
      params,
      examples,
      protocols,
      output_dir=os.path.join(output_dir, "images") if FLAGS.save_images else None,
      options=options,
    )
    extra = {
      "workdir": FLAGS.workdir or "pretrained:general",
      "dataset": config.data.name,
      "split": split,
      "inference": options,
    }
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
