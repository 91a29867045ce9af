"""PyTorch feature networks with the official layer structure and state-dict keys (test-only).

torchvision's vgg19/vgg16 features, pytorch-fid's FID Inception-v3 and lpips.LPIPS(net='vgg'),
written from their architecture descriptions, so that random weights saved as those packages
save them check our ports of these networks (tests/test_vgg.py, test_fid.py,
test_image_quality.py, test_eval_suite.py). Random weights come from torch_official.randomize.
"""

import torch
from torch import nn

VGG_CFG = {
  19: (
    64,
    64,
    'M',
    128,
    128,
    'M',
    256,
    256,
    256,
    256,
    'M',
    512,
    512,
    512,
    512,
    'M',
    512,
    512,
    512,
    512,
    'M',
  ),
  16: (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'),
}


class VGG19(nn.Module):
  """torchvision's vgg19 (configuration 'E'; depth 16: vgg16, 'D') without the classifier:
  `features` is the same nn.Sequential, so its state dict has torchvision's keys
  features.{index}.weight/bias."""

  def __init__(self, depth=19):
    super().__init__()
    seq, ch = [], 3
    for width in VGG_CFG[depth]:
      if width == 'M':
        seq.append(nn.MaxPool2d(kernel_size=2, stride=2))
      else:
        seq += [nn.Conv2d(ch, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
        ch = width
    self.features = nn.Sequential(*seq)


class BasicConv2d(nn.Module):
  """torchvision.models.inception.BasicConv2d: conv without bias, BN (eps 1e-3), ReLU."""

  def __init__(self, cin, cout, **kw):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return torch.relu(self.bn(self.conv(x)))


def _fid_avg_pool(x):
  return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
  """pytorch-fid's FIDInceptionA (torchvision's InceptionA, pool not counting padding)."""

  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
    self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

  def forward(self, x):
    return torch.cat(
      [
        self.branch1x1(x),
        self.branch5x5_2(self.branch5x5_1(x)),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        self.branch_pool(_fid_avg_pool(x)),
      ],
      1,
    )


class InceptionB(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat(
      [
        self.branch3x3(x),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2),
      ],
      1,
    )


class FIDInceptionC(nn.Module):
  def __init__(self, cin, c7):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = self.branch7x7dbl_1(x)
    for layer in (
      self.branch7x7dbl_2,
      self.branch7x7dbl_3,
      self.branch7x7dbl_4,
      self.branch7x7dbl_5,
    ):
      bd = layer(bd)
    return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_fid_avg_pool(x))], 1)


class InceptionD(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b7 = self.branch7x7x3_1(x)
    for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
      b7 = layer(b7)
    return torch.cat(
      [
        self.branch3x3_2(self.branch3x3_1(x)),
        b7,
        torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2),
      ],
      1,
    )


class FIDInceptionE(nn.Module):
  """FIDInceptionE_1 (average pool, padding not counted) or, with max_pool, FIDInceptionE_2."""

  def __init__(self, cin, max_pool=False):
    super().__init__()
    self.max_pool = max_pool
    self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
    if self.max_pool:
      pooled = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    else:
      pooled = _fid_avg_pool(x)
    return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
  """pytorch-fid's fid_inception_v3() (torchvision Inception3 with num_classes=1008, no aux
  logits, the FID blocks) and its InceptionV3 wrapper's input handling: [0, 1] images,
  bilinear resize to 299 (align_corners=False), 2x - 1. Returns (pool3 features, logits)."""

  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.Mixed_5b = FIDInceptionA(192, 32)
    self.Mixed_5c = FIDInceptionA(256, 64)
    self.Mixed_5d = FIDInceptionA(288, 64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b = FIDInceptionC(768, 128)
    self.Mixed_6c = FIDInceptionC(768, 160)
    self.Mixed_6d = FIDInceptionC(768, 160)
    self.Mixed_6e = FIDInceptionC(768, 192)
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b = FIDInceptionE(1280)
    self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    self.fc = nn.Linear(2048, 1008)

  def forward(self, x):
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
    x = 2 * x - 1
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=2)
    for name in ('5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e', '7a', '7b', '7c'):
      x = getattr(self, f'Mixed_{name}')(x)
    pool = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)
    return pool, self.fc(pool)


class NetLinLayer(nn.Module):
  """lpips.NetLinLayer: dropout, then a bias-free 1x1 conv to one channel (keys model.1)."""

  def __init__(self, cin):
    super().__init__()
    self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(cin, 1, 1, bias=False))


class LPIPS(nn.Module):
  """lpips.LPIPS(net='vgg') in eval mode: ScalingLayer, vgg16 slices at relu1_2 .. relu5_3,
  normalize_tensor, squared difference, lin layers, spatial average, sum."""

  def __init__(self):
    super().__init__()
    self.net = VGG19(16)
    for k, c in enumerate((64, 128, 256, 512, 512)):
      setattr(self, f'lin{k}', NetLinLayer(c))
    self.register_buffer('shift', torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
    self.register_buffer('scale', torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
    self.taps = (3, 8, 15, 22, 29)  # features indices of relu1_2, relu2_2, relu3_3, ...

  def _features(self, x):
    outs, h = [], (x - self.shift) / self.scale
    for i, layer in enumerate(self.net.features[:30]):
      h = layer(h)
      if i in self.taps:
        outs.append(h)
    return outs

  def forward(self, x, y):
    total = 0
    for k, (a, b) in enumerate(zip(self._features(x), self._features(y))):
      a = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
      b = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
      total = total + getattr(self, f'lin{k}').model((a - b) ** 2).mean([2, 3], keepdim=True)
    return total.reshape(-1)
