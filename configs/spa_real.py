"""SPA-Data ("SPA-REAL" in the paper): real rain, tested on real_test_1000.

  python train.py --config=configs/spa_real.py --workdir=DIR --config.data.manual_dir=/data/spa

manual_dir holds real_world.txt, real_world/, real_world_gt/ and real_test_1000/. The
NASNet authors and SPANet report RGB PSNR/SSIM (skimage): "rgb" first, Y beside it.
"""

from configs import default

VARIANTS = default.DATASET_VARIANTS  # configs/spa_real.py:gpu for one GPU (default.for_gpu)


def get_config(variant: str = ""):
  config = default.get_config()
  config.data.name = "spa_data"
  config.data.eval_split = "test"
  config.model.input_normalization = "spa_real"  # the authors' input mean/std for this set
  config.eval.protocols = ("rgb", "y8")
  return default.with_variant(config, variant, "configs/spa_real.py")
