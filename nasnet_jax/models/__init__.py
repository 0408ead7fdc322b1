"""Deraining networks. All take NHWC float images in [0, 1]."""

from nasnet_jax.models.nasnet import (ATTENTION_KINDS, Block, NASNet, NeuronAttention,
                                      SqueezeExcitation, Stage, shifted_depthwise_conv)

__all__ = ["ATTENTION_KINDS", "Block", "NASNet", "NeuronAttention", "SqueezeExcitation",
           "Stage", "shifted_depthwise_conv"]
