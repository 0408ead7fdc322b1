"""Trains a deraining network.

  python train.py --config=configs/synthetic.py --workdir=/tmp/nasnet_demo
  python train.py --config=configs/default.py --workdir=DIR --config.batch_size=8

Re-running the same command resumes from the latest checkpoint in DIR/checkpoints.
On several hosts, start the same command on each with --distributed (cluster detected
from the environment), or with --coordinator_address=HOST:PORT --num_processes=N
--process_id=I (I = 0 .. N-1) by hand.
"""

import jax
from absl import app, flags
from ml_collections import config_flags

from nasnet_jax import command_line, train_lib

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
command_line.define_distributed_flags()
flags.DEFINE_integer(
  "cpu_devices",
  0,
  "Split this host's CPU into N JAX devices and train "
  "data-parallel over them (to run multi-device code on a CPU; the batch "
  "must divide by N; not faster on 2 cores). 0: JAX's default.",
)
flags.DEFINE_bool("verbose", False, "Also print INFO logs of TFDS, orbax and JAX.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  command_line.quiet(FLAGS.verbose)
  if len(argv) > 1:
    command_line.fail(
      f"unexpected arguments {argv[1:]}; settings are flags, e.g. --config.batch_size=8", status=2
    )
  if FLAGS.cpu_devices < 0:
    command_line.fail(f"--cpu_devices must be >= 0, got {FLAGS.cpu_devices}", status=2)
  if FLAGS.cpu_devices:
    jax.config.update("jax_num_cpu_devices", FLAGS.cpu_devices)  # before any backend use
  command_line.initialize_distributed(FLAGS)
  command_line.run(lambda: train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir))


if __name__ == "__main__":
  app.run(main, flags_parser=command_line.parse_flags)
