"""RainCityscapes: rain streaks and fog; the paper's 9,432 / 1,188 split.

  python train.py --config=configs/raincityscapes.py --workdir=DIR --config.data.manual_dir=/data/cityscapes

manual_dir holds leftImg8bit_rain/ and leftImg8bit/ (or DAF-Net's train/, test/, image/).
Scored in RGB as the NASNet authors report it, Y beside it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/raincityscapes.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "rain_cityscapes"
  config.data.eval_split = "test"
  config.model.input_normalization = "raincityscapes"  # the authors' input mean/std for this set
  config.eval.protocols = ("rgb", "y8")
  return default.with_variant(config, variant, "configs/raincityscapes.py")
