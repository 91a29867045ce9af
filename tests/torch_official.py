"""PyTorch modules with the official layer structure and state-dict key names (test-only).

Written from the official repositories' architecture descriptions (yunjey/stargan model.py,
arbishakram/SARGAN generator.py + utils.py, junyanz/pytorch-CycleGAN-and-pix2pix networks.py with
norm='instance'), so that their random weights, saved as the official code saves them, exercise
jaxpr_gan.convert. Kept in train mode: InstanceNorm uses each image's statistics, as the
official test scripts do.

The feature networks that the metrics and losses load (torchvision VGG, pytorch-fid's
Inception, lpips.LPIPS) are in tests/torch_official_features.py.
"""

import torch
from torch import nn


def _in(ch, running=True):
  return nn.InstanceNorm2d(ch, affine=True, track_running_stats=running)


class StarResidual(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.main = nn.Sequential(
      nn.Conv2d(ch, ch, 3, 1, 1, bias=False),
      _in(ch),
      nn.ReLU(),
      nn.Conv2d(ch, ch, 3, 1, 1, bias=False),
      _in(ch),
    )

  def forward(self, x):
    return x + self.main(x)


class ConvLayer(nn.Module):
  """SARGAN's utils.ConvLayer with norm 'in'/'none' and relu 'relu'/'none'."""

  def __init__(self, cin, cout, scale='none', norm=True, relu=True):
    super().__init__()
    self.up = scale == 'up'
    self.reflection_pad = nn.ReflectionPad2d(1)
    self.conv2d = nn.Conv2d(cin, cout, 3, 2 if scale == 'down' else 1, bias=not norm)
    self.norm = nn.Module()
    self.norm.norm = _in(cout, running=False) if norm else nn.Identity()
    self.relu = nn.ReLU() if relu else nn.Identity()

  def forward(self, x):
    if self.up:
      x = nn.functional.interpolate(x, scale_factor=2, mode='nearest')
    return self.relu(self.norm.norm(self.conv2d(self.reflection_pad(x))))


class Hourglass(nn.Module):
  """SARGAN's SEDN(depth, cin, 1): modules b1_l, b2_l, b2_plus_1, b3_l, out_block."""

  def __init__(self, depth, cin, mid=64):
    super().__init__()
    self.depth = depth
    for level in range(depth, 0, -1):
      c1 = cin if level == depth else mid
      self.add_module(f'b1_{level}', ConvLayer(c1, mid))
      self.add_module(f'b2_{level}', ConvLayer(c1, mid, scale='down'))
      if level == 1:
        self.add_module('b2_plus_1', ConvLayer(mid, mid))
      self.add_module(f'b3_{level}', ConvLayer(mid, mid, scale='up'))
    self.out_block = nn.Sequential(ConvLayer(mid, 1, norm=False, relu=False), nn.Sigmoid())

  def _level(self, level, x):
    up1 = self._modules[f'b1_{level}'](x)
    low1 = self._modules[f'b2_{level}'](x)
    low2 = self._level(level - 1, low1) if level > 1 else self._modules['b2_plus_1'](low1)
    up2 = self._modules[f'b3_{level}'](low2)
    if up2.shape[2:] != up1.shape[2:]:
      up2 = nn.functional.interpolate(up2, up1.shape[2:])
    return up1 + up2

  def forward(self, x):
    return x * self.out_block(self._level(self.depth, x))


class SARB(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.conv1 = ConvLayer(ch, ch)
    self.conv2 = ConvLayer(ch, ch, relu=False)
    self.att_func = Hourglass(2, ch)

  def forward(self, x):
    return x + self.att_func(self.conv2(self.conv1(x)))


class StarGenerator(nn.Module):
  """yunjey/stargan Generator; `sargan=True`: SARGAN's (one SARB, image residual, and the
  official module's unused `att_func`)."""

  def __init__(self, conv_dim, c_dim, repeat_num, sargan=False):
    super().__init__()
    layers = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), _in(conv_dim), nn.ReLU()]
    ch = conv_dim
    for _ in range(2):
      layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), _in(ch * 2), nn.ReLU()]
      ch *= 2
    layers += [SARB(ch)] if sargan else [StarResidual(ch) for _ in range(repeat_num)]
    for _ in range(2):
      layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), _in(ch // 2), nn.ReLU()]
      ch //= 2
    layers += [nn.Conv2d(ch, 3, 7, 1, 3, bias=False), nn.Tanh()]
    self.sargan = sargan
    if sargan:
      self.att_func = Hourglass(2, 3)
    self.main = nn.Sequential(*layers)

  def forward(self, x, c):
    c = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    y = self.main(torch.cat([x, c], 1))
    return y + x if self.sargan else y


class StarDiscriminator(nn.Module):
  def __init__(self, image_size, conv_dim, c_dim, repeat_num):
    super().__init__()
    layers = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
    ch = conv_dim
    for _ in range(1, repeat_num):
      layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
      ch *= 2
    self.main = nn.Sequential(*layers)
    self.conv1 = nn.Conv2d(ch, 1, 3, 1, 1, bias=False)
    self.conv2 = nn.Conv2d(ch, c_dim, image_size // 2**repeat_num, bias=False)

  def forward(self, x):
    h = self.main(x)
    return self.conv1(h), self.conv2(h).view(x.shape[0], -1)


class ResnetBlock(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.conv_block = nn.Sequential(
      nn.ReflectionPad2d(1),
      nn.Conv2d(ch, ch, 3),
      nn.InstanceNorm2d(ch),
      nn.ReLU(True),
      nn.ReflectionPad2d(1),
      nn.Conv2d(ch, ch, 3),
      nn.InstanceNorm2d(ch),
    )

  def forward(self, x):
    return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
  def __init__(self, ngf, n_blocks):
    super().__init__()
    model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    ch = ngf
    for _ in range(2):
      model += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.InstanceNorm2d(ch * 2), nn.ReLU(True)]
      ch *= 2
    model += [ResnetBlock(ch) for _ in range(n_blocks)]
    for _ in range(2):
      model += [
        nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1),
        nn.InstanceNorm2d(ch // 2),
        nn.ReLU(True),
      ]
      ch //= 2
    model += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh()]
    self.model = nn.Sequential(*model)

  def forward(self, x):
    return self.model(x)


class NLayerDiscriminator(nn.Module):
  def __init__(self, ndf, n_layers=3):
    super().__init__()
    seq = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
      prev, mult = mult, min(2**n, 8)
      seq += [
        nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1),
        nn.InstanceNorm2d(ndf * mult),
        nn.LeakyReLU(0.2, True),
      ]
    seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    self.model = nn.Sequential(*seq)

  def forward(self, x):
    return self.model(x)


def randomize(module: nn.Module, seed: int) -> nn.Module:
  """Every parameter (InstanceNorm affine ones included) drawn at random, as after training."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in module.parameters():
      scale = p[0].numel() ** -0.5 if p.ndim > 1 else 0.5  # 1/sqrt(fan-in) for weights
      p.copy_(torch.randn(p.shape, generator=gen) * scale)
  return module
