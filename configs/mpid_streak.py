"""MPID streak subset, as the NASNet authors reorganised it (MPID/streak/{train,test}/{data,gt}).

  python train.py --config=configs/mpid_streak.py --workdir=DIR --config.data.manual_dir=/data/MPID

Scored in RGB as the NASNet authors report MPID, Y beside it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/mpid_streak.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "mpid/streak"
  config.data.eval_split = "test"
  config.model.input_normalization = "mpid_streak"  # the authors' input mean/std for this set
  config.eval.protocols = ("rgb", "y8")
  return default.with_variant(config, variant, "configs/mpid_streak.py")
