"""PReNet and PRN in PyTorch, with the authors' module names (needs ``pip install torch``).

    import torch
    from nasnet_jax import torch_prenet
    net = torch_prenet.PReNet(stages=6)
    net.load_state_dict(torch.load("logs/Rain100L/PReNet6/net_latest.pth", weights_only=True))

A restatement of the network of Ren et al. (CVPR 2019) as their released files lay it out
(``conv0``, ``res_conv1`` … ``res_conv5``, ``conv_i/f/g/o``, ``conv``; Sequential indices
0 and 2 for the two convolutions of a block), the twin of ``nasnet_jax.models.PReNet``.
The conversion's parity tests use it, and ``python -m nasnet_jax.convert WORKDIR
--to_pytorch`` writes files it loads strictly. Input and output are NCHW RGB in [0, 1];
``forward`` returns the final estimate only. Not imported by ``nasnet_jax`` itself.
"""

import torch
from torch import nn


def _conv(in_channels, out_channels, activation=None):
  layers = [nn.Conv2d(in_channels, out_channels, 3, 1, 1)]
  return nn.Sequential(*layers, activation) if activation is not None else nn.Sequential(*layers)


def _block(channels):
  return nn.Sequential(
    nn.Conv2d(channels, channels, 3, 1, 1),
    nn.ReLU(),
    nn.Conv2d(channels, channels, 3, 1, 1),
    nn.ReLU(),
  )


class PReNet(nn.Module):
  """``recurrent=False`` is PRN; ``recursive_blocks=True`` the ``_r`` variants (one
  residual block, ``res_conv1``, applied ``blocks`` times)."""

  def __init__(self, stages=6, blocks=5, channels=32, recurrent=True, recursive_blocks=False):
    super().__init__()
    self.stages, self.blocks, self.channels = stages, blocks, channels
    self.recurrent, self.recursive_blocks = recurrent, recursive_blocks
    self.conv0 = _conv(6, channels, nn.ReLU())
    for j in range(1 if recursive_blocks else blocks):
      setattr(self, f"res_conv{j + 1}", _block(channels))
    if recurrent:
      self.conv_i = _conv(2 * channels, channels, nn.Sigmoid())
      self.conv_f = _conv(2 * channels, channels, nn.Sigmoid())
      self.conv_g = _conv(2 * channels, channels, nn.Tanh())
      self.conv_o = _conv(2 * channels, channels, nn.Sigmoid())
    self.conv = _conv(channels, 3)

  def forward(self, rainy):
    n, _, height, width = rainy.shape
    x = rainy
    h = rainy.new_zeros(n, self.channels, height, width)
    c = rainy.new_zeros(n, self.channels, height, width)
    for _ in range(self.stages):
      x = self.conv0(torch.cat((rainy, x), 1))
      if self.recurrent:
        z = torch.cat((x, h), 1)
        c = self.conv_f(z) * c + self.conv_i(z) * self.conv_g(z)
        h = self.conv_o(z) * torch.tanh(c)
        x = h
      for j in range(self.blocks):
        block = getattr(self, f"res_conv{1 if self.recursive_blocks else j + 1}")
        x = torch.relu(block(x) + x)
      x = self.conv(x) + rainy
    return x
