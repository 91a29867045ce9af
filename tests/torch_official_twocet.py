"""PyTorch modules with 2CET-GAN's official layer structure and state-dict keys (test-only).

Written from xiaohanghu/2CET-GAN Model.py's architecture (StarGAN v2's networks without the
mapping network): Generator (from_rgb, encode/decode ModuleLists, to_rgb Sequential), the
shared trunk EncoderBlk (`shared` Sequential), Encoder (shared, unshared Sequential of a Linear)
and Discriminator (main = Sequential(EncoderBlk, 1x1 conv)). `dim_in` may narrow the first width
(official: 2**14 // img_size) for fast tests; `save_model` writes a file as the official
Utils.save_model does: one dict of the networks' state dicts.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

_lrelu = nn.LeakyReLU(0.2)


def _first_width(img_size, dim_in):
  return dim_in or 2**14 // img_size


class ResBlk(nn.Module):
  def __init__(self, cin, cout, normalize=False, downsample=False):
    super().__init__()
    self.normalize, self.downsample, self.learned_sc = normalize, downsample, cin != cout
    self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
    self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
    if normalize:
      self.norm1 = nn.InstanceNorm2d(cin, affine=True)
      self.norm2 = nn.InstanceNorm2d(cin, affine=True)
    if self.learned_sc:
      self.conv1x1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

  def forward(self, x):
    s = self.conv1x1(x) if self.learned_sc else x
    s = F.avg_pool2d(s, 2) if self.downsample else s
    h = self.norm1(x) if self.normalize else x
    h = self.conv1(_lrelu(h))
    h = F.avg_pool2d(h, 2) if self.downsample else h
    h = self.norm2(h) if self.normalize else h
    h = self.conv2(_lrelu(h))
    return (s + h) / math.sqrt(2)


class AdaIN(nn.Module):
  def __init__(self, code_dim, ch):
    super().__init__()
    self.fc = nn.Linear(code_dim, 2 * ch)
    self.norm = nn.InstanceNorm2d(ch, affine=False)

  def forward(self, x, c):
    gamma, beta = torch.chunk(self.fc(c)[:, :, None, None], 2, dim=1)
    return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
  def __init__(self, cin, cout, code_dim, upsample=False):
    super().__init__()
    self.upsample, self.learned_sc = upsample, cin != cout
    self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
    self.norm1 = AdaIN(code_dim, cin)
    self.norm2 = AdaIN(code_dim, cout)
    if self.learned_sc:
      self.conv1x1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

  def _up(self, x):
    return F.interpolate(x, scale_factor=2, mode='nearest') if self.upsample else x

  def forward(self, x, c):
    h = self.conv1(self._up(_lrelu(self.norm1(x, c))))
    h = self.conv2(_lrelu(self.norm2(h, c)))
    s = self._up(x)
    s = self.conv1x1(s) if self.learned_sc else s
    return (h + s) / math.sqrt(2)


class Generator(nn.Module):
  def __init__(self, img_size=128, code_dim=32, max_conv_dim=512, dim_in=None):
    super().__init__()
    ch = _first_width(img_size, dim_in)
    self.from_rgb = nn.Conv2d(3, ch, 3, 1, 1)
    self.encode, self.decode = nn.ModuleList(), nn.ModuleList()
    self.to_rgb = nn.Sequential(nn.InstanceNorm2d(ch, affine=True), nn.LeakyReLU(0.2),
                                nn.Conv2d(ch, 3, 1, 1, 0))  # fmt: skip
    for _ in range(int(math.log2(img_size)) - 4):
      out = min(2 * ch, max_conv_dim)
      self.encode.append(ResBlk(ch, out, normalize=True, downsample=True))
      self.decode.insert(0, AdainResBlk(out, ch, code_dim, upsample=True))
      ch = out
    for _ in range(2):
      self.encode.append(ResBlk(ch, ch, normalize=True))
      self.decode.insert(0, AdainResBlk(ch, ch, code_dim))

  def forward(self, x, c):
    x = self.from_rgb(x)
    for block in self.encode:
      x = block(x)
    for block in self.decode:
      x = block(x, c)
    return self.to_rgb(x)


class EncoderBlk(nn.Module):
  def __init__(self, img_dim=3, img_size=128, max_conv_dim=512, dim_in=None):
    super().__init__()
    ch = _first_width(img_size, dim_in)
    blocks = [nn.Conv2d(img_dim, ch, 3, 1, 1)]
    for _ in range(int(math.log2(img_size)) - 2):
      out = min(2 * ch, max_conv_dim)
      blocks.append(ResBlk(ch, out, downsample=True))
      ch = out
    blocks += [nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 4, 1, 0), nn.LeakyReLU(0.2)]
    self.shared = nn.Sequential(*blocks)
    self.dim_out = ch

  def forward(self, x):
    return self.shared(x)


class Encoder(nn.Module):
  def __init__(self, trunk, code_dim=32, encoder_grey=True):
    super().__init__()
    self.encoder_grey = encoder_grey
    self.shared = trunk
    self.unshared = nn.Sequential(nn.Linear(trunk.dim_out, code_dim))

  def forward(self, x):
    x = x.mean(dim=1, keepdim=True) if self.encoder_grey else x
    return self.unshared(self.shared(x).flatten(1))


class Discriminator(nn.Module):
  def __init__(self, trunk, num_domains=2):
    super().__init__()
    self.main = nn.Sequential(trunk, nn.Conv2d(trunk.dim_out, num_domains, 1, 1, 0))

  def forward(self, x, y):
    out = self.main(x).flatten(1)
    return out[torch.arange(y.size(0)), y]


def create(img_size=128, code_dim=32, max_conv_dim=512, dim_in=None, grey=True):
  """(generator, encoder, discriminator) as the official create_model builds them."""
  widths = dict(img_size=img_size, max_conv_dim=max_conv_dim, dim_in=dim_in)
  g = Generator(code_dim=code_dim, **widths)
  e = Encoder(EncoderBlk(img_dim=1 if grey else 3, **widths), code_dim, grey)
  d = Discriminator(EncoderBlk(**widths))
  return g, e, d


def save_model(networks: dict, path) -> str:
  """Utils.save_model: torch.save of {name: module.state_dict()}."""
  torch.save({name: m.state_dict() for name, m in networks.items()}, path)
  return str(path)
