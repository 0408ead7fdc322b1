"""Rain100L (light streaks): the paper's recipe, scored on the 100-image test set.

  python train.py --config=configs/rain100l.py --workdir=DIR --config.data.manual_dir=/data/rain100l

PReNet's copy (RainTrainL: 200 pairs) or Rain200L, whichever manual_dir holds. Scored
on Y (8-bit, "y8") as papers report Rain100/Rain200, RGB beside it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/rain100l.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "rain100l"
  config.data.eval_split = "test"
  config.model.input_normalization = "rain100l"  # the authors' input mean/std for this set
  config.eval.protocols = ("y8", "rgb")
  return default.with_variant(config, variant, "configs/rain100l.py")
