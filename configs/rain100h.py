"""Rain100H (heavy streaks): the paper's recipe, scored on the 100-image test set.

  python train.py --config=configs/rain100h.py --workdir=DIR --config.data.manual_dir=/data/rain100h
  python evaluate.py --config=configs/rain100h.py --workdir=DIR

The builder reads PReNet's copy (RainTrainH: 1,254 pairs) or Rain200H (1,800 pairs),
whichever manual_dir holds. Papers report Rain100/Rain200 on the Y channel (8-bit, MATLAB
style: "y8"); RGB (what the NASNet authors used) is printed beside it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/rain100h.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "rain100h"
  config.data.eval_split = "test"
  config.model.input_normalization = "rain100h"  # the authors' input mean/std for this set
  config.eval.protocols = ("y8", "rgb")
  return default.with_variant(config, variant, "configs/rain100h.py")
