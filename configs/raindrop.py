"""Raindrop (DeRaindrop, Qian et al.): raindrops on the lens, tested on test_a.

  python train.py --config=configs/raindrop.py --workdir=DIR --config.data.manual_dir=/data/raindrop
  python evaluate.py --config=configs/raindrop.py --workdir=DIR --config.data.eval_split=test_b

Raindrop papers score with the DeRaindrop protocol (crop to a multiple of 4, full-range
OpenCV Y, skimage SSIM): "deraindrop" first, RGB beside it. The authors published no
input statistics for this set, so the input is not normalised.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/raindrop.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "raindrop"
  config.data.eval_split = "test_a"
  config.eval.protocols = ("deraindrop", "rgb")
  return default.with_variant(config, variant, "configs/raindrop.py")
