"""NASNet in PyTorch, with the authors' module names (needs ``pip install torch``).

    import torch
    from nasnet_jax import torch_nasnet
    net = torch_nasnet.NASNet(stages=3, blocks=18, channels=64)
    net.load_state_dict(torch.load("model.pk", weights_only=True)["model"])

The twin of ``nasnet_jax.models.NASNet`` in the layout of the authors' checkpoints
(``pre``, ``stages.{i}.s.{j}.conv1/conv2/attlayer``, ``fusion_sub``, ``fusion_att``,
``post``), so a file from ``python -m nasnet_jax.convert WORKDIR --to_pytorch`` loads into
it strictly. The conversion's parity tests and ``benchmarks/run.py`` (the PyTorch
yardstick) both use it. Its input is NCHW and already normalised (the authors normalise in
their data loader), and the global residual adds that normalised input. Not imported by
``nasnet_jax`` itself, which never needs PyTorch.
"""

import torch
from torch import nn


class NeuronAttention(nn.Module):
  """Returns the gate; the caller multiplies (as the authors' class does)."""

  def __init__(self, channels):
    super().__init__()
    self.att = nn.Sequential(
      nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
      nn.ReLU(inplace=True),
      nn.Conv2d(channels, channels, 1),
      nn.Sigmoid(),
    )

  def forward(self, x):
    return self.att(x)


class Block(nn.Module):
  def __init__(self, channels, attention=True):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
    self.conv2 = nn.Conv2d(2 * channels, channels, 3, padding=1)
    self.attlayer = NeuronAttention(channels) if attention else None

  def forward(self, x):
    o1 = torch.relu(self.conv1(x))
    o2 = self.conv2(torch.cat([x, o1], 1))
    gated = self.attlayer(o2) * o2 if self.attlayer is not None else o2
    return gated + x


class Stage(nn.Module):
  def __init__(self, channels, blocks, attention=True):
    super().__init__()
    self.s = nn.Sequential(
      *[Block(channels, attention) for _ in range(blocks)],
      nn.Conv2d(channels, channels, 3, padding=1),
    )

  def forward(self, x):
    return self.s(x) + x


class NASNet(nn.Module):
  def __init__(self, stages=3, blocks=18, channels=64, attention=True, fuse_stages=True):
    super().__init__()
    self.pre = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1))
    self.stages = nn.ModuleList([Stage(channels, blocks, attention) for _ in range(stages)])
    self.fusion_sub = (
      nn.Sequential(
        nn.Conv2d(channels * stages, channels, 3, padding=1), nn.Conv2d(channels, channels, 1)
      )
      if fuse_stages
      else None
    )
    self.fusion_att = NeuronAttention(channels) if attention else None
    self.post = nn.Sequential(
      nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, 3, 3, padding=1)
    )

  def forward(self, x):
    h = self.pre(x)
    outputs = []
    for stage in self.stages:
      h = stage(h)
      outputs.append(h)
    f = self.fusion_sub(torch.cat(outputs, 1)) if self.fusion_sub is not None else h
    if self.fusion_att is not None:
      f = self.fusion_att(f) * f
    return self.post(f) + x
