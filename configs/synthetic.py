"""Demo: a small NASNet on the built-in synthetic rain; trains on a 2-core CPU in minutes.

Half of every batch is re-rendered on the fly with fresh synthetic rain (all three
types, all strengths), so the small photo set does not get memorised.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model.stages = 1
  config.model.blocks = 4
  config.model.features = 32
  config.data.name = "synthetic_rain/mixed"
  config.data.crop_size = 64
  config.data.synthetic_rain_fraction = 0.5
  config.batch_size = 8
  config.total_steps = 1_500
  config.learning_rate = 1e-3
  config.warmup_steps = 50
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 250
  config.eval.protocols = ("y8",)
  return config
