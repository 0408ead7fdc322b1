"""NASNet with 3 stage(s) on Rain100H (paper Table 8: 30.38 dB), the full recipe.

  python train.py --config=configs/ablations/stages_3.py --workdir=DIR --config.data.manual_dir=/data/rain100h

The design note places the stage ablation on Rain100H; its 3-stage row equals the main
Rain100H result, so it uses the main recipe (lr 2e-4, 300k steps), not the lr 1e-4 runs.
"""

from configs import rain100h


def get_config():
  config = rain100h.get_config()
  config.model.stages = 3
  return config
