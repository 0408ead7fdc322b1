"""DDSA on SPA-Data (real rain) with DRSformer's recipe, tested on real_test_1000.

  python train.py --config=configs/ddsa_spa.py --workdir=DIR --config.data.manual_dir=/data/spa

manual_dir as for configs/spa_real.py. DRSformer reports 48.54 dB / 0.9924 on SPA on the
Y channel ("y8"), so "y8" is the headline here; RGB is printed beside it.
"""

from configs import default


def get_config():
  config = default.use_ddsa_recipe(default.get_config())
  config.data.name = "spa_data"
  config.data.eval_split = "test"
  config.eval.protocols = ("y8", "rgb")
  return config
