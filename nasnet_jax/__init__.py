"""nasnet-jax: single-image deraining in JAX/Flax.

    import nasnet_jax
    model, params = nasnet_jax.restore("/path/to/workdir")
    derained = nasnet_jax.derain(model, params, rainy_uint8_image)   # HxWx3 -> HxWx3

Images are NHWC (or HWC), RGB, uint8 or float in [0, 1].
"""

from nasnet_jax import inference, metrics
from nasnet_jax.checkpointing import restore
from nasnet_jax.inference import Derainer, derain
from nasnet_jax.losses import l1_ssim_loss
from nasnet_jax.models import (Block, NASNet, NeuronAttention, SqueezeExcitation, Stage,
                               create_model)

__version__ = "0.1.0"

__all__ = ["Block", "Derainer", "inference", "NASNet", "NeuronAttention", "SqueezeExcitation", "Stage",
           "create_model", "derain", "l1_ssim_loss", "metrics", "restore"]
