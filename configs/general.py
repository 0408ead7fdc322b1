"""A general NASNet, meant to ship inside the package (not shipped yet: see below).

A NASNet of 2 stages x 4 blocks x 40 features (440,603 parameters; receptive-field
radius 31 px, against the demo's 18) trained on the built-in synthetic rain as the demo
is (fresh rain of all three types every step, a fifth of the pairs rain-free, rescaled
and recoloured crops, flips and rotations after the rain):

  python train.py --config=configs/general.py --workdir=workdirs/general --cpu_devices=2

A killed run resumes with the same command.

Measured 2026-12-01 on a 2-core x86-64 CPU (no GPU): 4,000 steps in 57.7 min (5.5 img/s;
the first 8 min shared the CPU with another job). Scored with ``evaluate.py
--config=configs/synthetic.py`` (held-out photos, y8): own rain 22.78 -> 25.44 dB
(+2.66; streak +5.22, drop +1.18, mist +1.57), held-out renderer 19.90 -> 22.19 (+2.29;
thin streaks +5.78, heavy streaks +3.16, mist +0.60, drops -0.38), but clean photos come
back at only 32.2 dB: 1-5 grey levels darker and with bright thin details taken for rain.
The 1 x 4 x 32 demo, trained the same way with a quarter of the pairs rain-free, returns
them at 38.9 dB. So this run is not shipped; the next one needs more rain-free pairs.
"""

from configs import synthetic


def get_config():
  config = synthetic.get_config()
  config.model.stages = 2
  config.model.blocks = 4
  config.model.features = 40
  config.data.clean_fraction = 0.2
  config.data.scale_range = (0.5, 2.0)
  config.batch_size = 4
  config.total_steps = 4000
  config.learning_rate = 1e-3
  config.warmup_steps = 100
  config.log_every_steps = 100
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.eval.max_images = 8
  return config
