"""NASNet itself: the reference row of Tables 7 and 9 (41.14 dB / 0.9843).

Ablation protocol of the paper's Tables 7 and 9: SPA-Data, lr 1e-4 for 200k steps.

  python train.py --config=configs/ablations/nasnet.py --workdir=DIR --config.data.manual_dir=/data/spa
"""

from configs import spa_real


def get_config():
  config = spa_real.get_config()
  config.learning_rate = 1e-4
  config.total_steps = 200_000
  return config
