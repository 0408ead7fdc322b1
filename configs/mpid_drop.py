"""MPID drop subset, as the NASNet authors reorganised it (MPID/drop/{train,test}/{data,gt}).

  python train.py --config=configs/mpid_drop.py --workdir=DIR --config.data.manual_dir=/data/MPID

Scored in RGB as the NASNet authors report MPID, with the DeRaindrop protocol beside
it (the authors note that MPID drop and the Raindrop set are the same images).
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/mpid_drop.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "mpid/drop"
  config.data.eval_split = "test"
  config.model.input_normalization = "mpid_drop"  # the authors' input mean/std for this set
  config.eval.protocols = ("rgb", "deraindrop")
  return default.with_variant(config, variant, "configs/mpid_drop.py")
