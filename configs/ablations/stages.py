"""NASNet with 1 to 4 stages on Rain100H (paper Table 8), the full recipe.

  python train.py --config=configs/ablations/stages.py:2 --workdir=DIR --config.data.manual_dir=/data/rain100h

The number after ``:`` is the stage count (paper: 1 -> 28.98 dB, 2 -> 29.78, 3 -> 30.38,
4 -> 30.46; docs/nasnet.md). The paper runs this ablation on Rain100H; its 3-stage row equals the
main Rain100H result, so it uses the main recipe (lr 2e-4, 300k steps), not the lr 1e-4
runs of Tables 7 and 9.
"""

from configs import rain100h

VARIANTS = ("1", "2", "3", "4")


def get_config(stages: str = "3"):
  if str(stages) not in VARIANTS:
    raise ValueError(
      f"configs/ablations/stages.py:{stages}: the paper ablates 1 to 4 "
      "stages; use e.g. configs/ablations/stages.py:2"
    )
  config = rain100h.get_config()
  config.model.stages = int(stages)
  return config
