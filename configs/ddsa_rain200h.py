"""DDSA on Rain200H with DRSformer's recipe, scored on the Y channel as DRSformer reports.

  python train.py --config=configs/ddsa_rain200h.py --workdir=DIR --config.data.manual_dir=/data/rain200h
  python evaluate.py --config=configs/ddsa_rain200h.py --workdir=DIR

manual_dir holds Rain200H (train/ and test/ with rain/ and norain/, 1,800 + 200 pairs),
read by the rain100h builder. DRSformer's reported figure to compare with: 32.17 dB /
0.9326 on "y8" (docs/ddsa.md).
"""

from configs import default


def get_config():
  config = default.use_ddsa_recipe(default.get_config())
  config.data.name = "rain100h"
  config.data.eval_split = "test"
  config.eval.protocols = ("y8", "rgb")
  return config
