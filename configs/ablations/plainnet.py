"""PlainNet: every neuron attention removed (Table 7: 40.85 dB / 0.9841).

Ablation protocol of the paper's Tables 7 and 9: SPA-Data, lr 1e-4 for 200k steps.

  python train.py --config=configs/ablations/plainnet.py --workdir=DIR --config.data.manual_dir=/data/spa
"""

from configs import spa_real


def get_config():
  config = spa_real.get_config()
  config.learning_rate = 1e-4
  config.total_steps = 200_000
  config.model.attention = "none"
  return config
