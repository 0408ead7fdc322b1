"""DualStageNet on Rain200H, scored on the Y channel (as DDSA's comparison figures are).

  python train.py --config=configs/dual_stage_rain200h.py --workdir=DIR --config.data.manual_dir=/data/rain200h
  python evaluate.py --config=configs/dual_stage_rain200h.py --workdir=DIR

manual_dir holds Rain200H (train/ and test/ with rain/ and norain/, 1,800 + 200 pairs),
read by the rain100h builder. The paper reports no figures; DRSformer's 32.17 dB / 0.9326
("y8") and NASNet's are the ones to compare with (docs/ddsa.md, docs/nasnet.md).
"""

from configs import default


def get_config():
  config = default.use_dual_stage_recipe(default.get_config())
  config.data.name = "rain100h"
  config.data.eval_split = "test"
  config.eval.protocols = ("y8", "rgb")
  return config
