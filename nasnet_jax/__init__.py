"""nasnet-jax: single-image deraining in JAX/Flax.

    import nasnet_jax
    model, params = nasnet_jax.pretrained()                  # the shipped general model
    model, params = nasnet_jax.restore("/path/to/workdir")   # or your own
    derained = nasnet_jax.derain(model, params, rainy_uint8_image)   # HxWx3 -> HxWx3

Images are NHWC (or HWC), RGB, uint8 or float in [0, 1]. In your own jitted code, jit the
network with its compiler options, as the library does (on a CPU they pick XLA's faster
convolution kernels for the network):

    apply = jax.jit(model.apply, compiler_options=nasnet_jax.compiler_options(model))
"""

from nasnet_jax import inference, metrics
from nasnet_jax.checkpointing import restore
from nasnet_jax.inference import Derainer, derain
from nasnet_jax.losses import l1_ssim_loss
from nasnet_jax.models import Block, NASNet, NeuronAttention, SqueezeExcitation, Stage, create_model
from nasnet_jax.models.convolution import compiler_options
from nasnet_jax.pretrained_models import pretrained

__version__ = "0.1.0"

__all__ = [
  "Block",
  "Derainer",
  "NASNet",
  "NeuronAttention",
  "SqueezeExcitation",
  "Stage",
  "compiler_options",
  "create_model",
  "derain",
  "inference",
  "l1_ssim_loss",
  "metrics",
  "pretrained",
  "restore",
]
