"""Demo: a small NASNet on the built-in synthetic rain; trains on a 2-core CPU in minutes.

Every batch gets freshly rendered synthetic rain (all three types, strengths from none to
heavy) over its clean crops, on device and keyed by the step, so the few photos yield
endless distinct training pairs. A quarter of the pairs are rain-free, so that a photo
without rain comes back unchanged; crops are rescaled and recoloured (gamma, white
balance, brightness) before the rain and flipped/rotated after it. The README runs it
on one CPU device, which trains it faster than ``--cpu_devices=2`` on a 2-core CPU
(benchmarks/RESULTS.md):

  python train.py --config=configs/synthetic.py --workdir=workdirs/synthetic

``evaluate.py`` then scores the held-out photos: the training renderer's three types, the
independent held-out renderer's four kinds, and the clean photos.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.stages = 1
  config.model.blocks = 4
  config.model.features = 32
  config.data.name = "synthetic_rain/mixed"
  # Small crops, many steps: at the same pixels per second, 64^2 crops beat 96^2 crops
  # (docs/demo.md).
  config.data.crop_size = 64
  config.data.synthetic_rain_fraction = 1.0
  # Odds of (streak, drop, mist): drops are the hardest to learn, streaks the easiest.
  # A quarter of the pairs rain-free, so that a photo without rain comes back unchanged
  # (the clean-photo row of docs/demo.md).
  config.data.synthetic_rain_weights = (1.0, 1.5, 1.0)
  config.data.clean_fraction = 0.25
  config.data.photometric_augmentation = True
  config.data.scale_range = (0.6, 1.8)
  config.batch_size = 4
  # Sized so that the README's first command (dataset build, training, evaluation) runs
  # in minutes on a 2-core CPU; its measured time is in docs/demo.md.
  config.total_steps = 1300
  config.learning_rate = 2e-3
  config.warmup_steps = 50
  config.log_every_steps = 100
  config.eval_every_steps = 1300
  config.checkpoint_every_steps = 650
  config.eval.protocols = ("y8",)
  config.eval.max_images = 6  # a quick look during training; evaluate.py scores all
  return config
