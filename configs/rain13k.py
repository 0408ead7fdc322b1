"""Rain13K (Restormer/MPRNet's merged training set) from input/target folders.

  python train.py --config=configs/rain13k.py --workdir=DIR --config.data.manual_dir=/data/Datasets
  python evaluate.py --config=configs/rain13k.py --workdir=DIR --config.data.eval_split=Test2800

manual_dir is Restormer's Datasets/ folder: train/Rain13K/{input,target} and
test/{Test100,Rain100H,Rain100L,Test1200,Test2800}/{input,target}. The generic
``paired_folders`` builder makes one split per folder, named after it. These sets are
reported on Y (8-bit, "y8"), RGB beside it. No input statistics were published for it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/rain13k.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "paired_folders/rain13k"
  config.data.train_split = "Rain13K"
  config.data.eval_split = "Test100"
  # y8: Restormer/MPRNet's tables; ydouble_ds: RCDNet/DDN's statistics scripts, which
  # score Test2800 (Rain1400) and Test1200 (Rain1200) with ssim.m's downsampling.
  config.eval.protocols = ("y8", "rgb", "ydouble_ds")
  return default.with_variant(config, variant, "configs/rain13k.py")
