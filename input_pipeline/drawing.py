"""How one face is drawn from its parameters: the drawing machinery of the synthetic faces.

input_pipeline/synthetic.py picks the identity and expression parameters; this module turns
them into pixels. _Canvas is a supersampled drawing surface in unit coordinates (with a
skin/hair mask for the photo style's shading); the _draw_* functions paint the face layer by
layer (base: hair behind, neck, shirt, ears, face, nose; then eyes, brows, mouth and the front
hair), and _shade lights the photo style. Pillow + numpy only, deterministic.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from PIL import ImageDraw

_CY = 0.54  # face centre (unit coordinates, y down)
_ZOOM = 1.12  # unit coordinates -> image: zoom about the image centre
_OUTLINE = (38, 28, 34)


def _cat(*parts):
  return np.concatenate([np.atleast_1d(v) for v in parts])


def _rgb(c, f=1.0):
  return tuple(int(min(255, max(0, round(v * f)))) for v in c)


def _mix(c0, c1, t):
  return tuple(int(round(a + (b - a) * t)) for a, b in zip(c0, c1))


class _Canvas:
  """Supersampled drawing surface in unit coordinates, with skin/hair masks for shading."""

  def __init__(self, n: int, bg0, bg1, mask_n: int = 0):
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None, None]
    grad = np.asarray(bg0, np.float32) * (1 - t) + np.asarray(bg1, np.float32) * t
    grad = Image.fromarray(grad.round().astype(np.uint8))  # (n, 1) column, widened below
    self.n, self.img = n, grad.resize((n, n), Image.NEAREST)
    self.d = ImageDraw.Draw(self.img, 'RGBA')
    # Material mask (R = skin, G = hair) at a lower resolution: it only weights the shading.
    self.mask = Image.new('RGB', (mask_n, mask_n)) if mask_n else None
    self.md, self.mk = (ImageDraw.Draw(self.mask) if mask_n else None), mask_n / n

  def w(self, width: float) -> int:
    return max(1, int(round(width * _ZOOM * self.n)))

  def pts(self, xs, ys):
    f = lambda v: (((np.asarray(v) - 0.5) * _ZOOM + 0.5) * self.n).tolist()  # noqa: E731
    return list(zip(f(xs), f(ys)))

  def _mask(self, fn, mat):
    if mat is not None and self.md is not None:  # 'skin' / 'hair' / other material
      fn(self.md, (255 * (mat == 'skin'), 255 * (mat == 'hair'), 0))

  def poly(self, xs, ys, fill, outline=None, width=0.0, mat=None):
    p = self.pts(xs, ys)
    self.d.polygon(p, fill=fill, outline=outline, width=self.w(width) if outline else 1)
    self._mask(lambda d, v: d.polygon([(x * self.mk, y * self.mk) for x, y in p], v), mat)

  def ellipse(self, x, y, rx, ry, fill, outline=None, width=0.0, mat=None):
    (x0, y0), (x1, y1) = self.pts([x - rx, x + rx], [y - ry, y + ry])
    box = [x0, y0, x1, y1]
    self.d.ellipse(box, fill=fill, outline=outline, width=self.w(width) if outline else 1)
    self._mask(lambda d, v: d.ellipse([c * self.mk for c in box], fill=v), mat)

  def line(self, xs, ys, fill, width):
    self.d.line(self.pts(xs, ys), fill=fill, width=self.w(width), joint='curve')


def _arc(cx, cy, rx, ry, t0, t1, k=33, spikes=0.0):
  """Points on an ellipse for angles t0..t1 (counter-clockwise on screen, y up)."""
  t = np.linspace(t0, t1, k)
  rad = 1.0 + spikes * (np.arange(k) % 2)
  return cx + rx * rad * np.cos(t), cy - ry * rad * np.sin(t)


def _draw_back_hair(cv: _Canvas, p: dict, anime: bool, cx: float, a: float, b: float):
  """The hair behind the head: down to the chin or the shoulders, or a cap (+ a bun)."""
  hol = _rgb(p['hair'], 0.45) if anime else None
  ow = 0.007
  hair = p['hair']
  ha, hb, hy = a * p['vol'], b * p['vol'] * 1.02, _CY - 0.03
  style = p['style']
  if style in ('long', 'bob', 'bangs'):  # back hair down to the chin or the shoulders
    long = style == 'long' or (style == 'bangs' and p['long_back'])
    bottom, side = (0.97, ha * 1.12) if long else (_CY + 0.8 * b, ha * 1.08)
    xs, ys = _arc(cx, hy, ha, hb, 0, math.pi)
    xs = _cat(xs, cx - side, cx - side * 0.9, cx + side * 0.9, cx + side)
    ys = _cat(ys, bottom - 0.02, bottom, bottom, bottom - 0.02)
  else:  # a cap behind the head (+ a bun on top)
    if style == 'bun':
      cv.ellipse(cx, hy - hb * 0.97, 0.08, 0.07, hair, hol, ow, mat='hair')
    xs, ys = _arc(
      cx,
      hy,
      ha * 1.02,
      hb,
      -0.3,
      math.pi + 0.3,
      k=25 if style == 'spiky' else 33,
      spikes=0.12 if style == 'spiky' else 0,
    )
  cv.poly(xs, ys, hair, hol, ow, mat='hair')


def _draw_base(cv: _Canvas, p: dict, anime: bool):
  """Everything that belongs to the identity and lies under the expression features."""
  cx, a, b = 0.5, p['a'] * (1.0 if anime else 0.96), p['b']
  ol = _OUTLINE if anime else None
  ow = 0.007
  skin = p['skin']
  _draw_back_hair(cv, p, anime, cx, a, b)
  # Neck, shirt, ears, face.
  neck = _rgb(skin, 0.86)
  cv.poly(
    [cx - a * 0.42, cx + a * 0.42, cx + a * 0.5, cx - a * 0.5],
    [_CY + b * 0.5, _CY + b * 0.5, 1.01, 1.01],
    neck,
    ol,
    ow,
    mat='skin',
  )
  cv.ellipse(cx, 1.12, 0.42, 0.2, p['shirt'], ol, ow, mat='shirt')
  cv.poly([cx - 0.075, cx + 0.075, cx], [0.915, 0.915, 0.99], neck, ol, ow, mat='skin')
  ey = _CY + 0.015
  for s in (-1, 1):
    cv.ellipse(cx + s * a * 0.96, ey + 0.015, 0.035, 0.055, skin, ol, ow, mat='skin')
  t = np.linspace(0, 2 * math.pi, 65)[:-1]
  st, ct = np.sin(t), np.cos(t)
  low = np.clip(st, 0, 1)
  xs = cx + a * ct * (1 - p['jaw'] * 0.28 * low**2)
  ys = _CY + b * st * (1 - 0.05 * p['jaw'] * (1 - low))
  cv.poly(xs, ys, skin, ol, ow, mat='skin')
  _draw_nose(cv, skin, anime, cx, ey + 0.095)


def _draw_nose(cv: _Canvas, skin, anime: bool, cx: float, ny: float):
  """A short stroke (anime) or a soft highlight and two nostrils (photo)."""
  if anime:
    cv.line(
      [cx + 0.006, cx - 0.008, cx + 0.002],
      [ny - 0.022, ny + 0.004, ny + 0.006],
      _rgb(skin, 0.62),
      0.007,
    )
  else:
    cv.ellipse(cx + 0.012, ny - 0.012, 0.012, 0.03, _rgb(skin, 0.6) + (40,))
    for s in (-1, 1):
      cv.ellipse(cx + s * 0.014, ny + 0.008, 0.008, 0.005, _rgb(skin, 0.45) + (150,))


def _draw_eyes(cv: _Canvas, p: dict, e: dict, anime: bool):
  """Sclera between two lid curves, iris + pupil + highlights, lids and lashes."""
  skin, iris, k, o = p['skin'], p['iris'], p['esize'], e['eye_open']
  u = np.linspace(-1, 1, 17)  # -1 = inner corner, +1 = outer corner
  ew, eh, el = np.array((0.078, 0.072, 0.040) if anime else (0.062, 0.040, 0.025)) * k
  ey, tilt = _CY + 0.015, (-0.008 if anime else -0.003) * u
  up = ey + tilt - eh * o * (1 - u * u) ** 0.55
  lo = ey + tilt + el * (0.4 + 0.6 * min(o, 1.0)) * (1 - u * u) ** 0.8
  for s in (-1, 1):
    ex = 0.5 + s * p['sep']
    xs = ex + s * u * ew
    cv.poly(_cat(xs, xs[::-1]), _cat(up, lo[::-1]), (255, 255, 255) if anime else (242, 238, 234))
    ir = (0.056 if anime else 0.03) * p['esize']
    iy = ey + (0.006 if anime else 0.002)
    rx = ir * (0.84 if anime else 1.0)
    cv.ellipse(ex, iy, rx, ir, iris, _rgb(iris, 0.45) if anime else None, 0.005)
    if anime:
      cv.ellipse(ex, iy - ir * 0.35, rx * 0.8, ir * 0.55, _rgb(iris, 0.7) + (110,))
    cv.ellipse(ex, iy, rx * 0.45, ir * 0.5, _rgb(iris, 0.22))
    hr = ir * (0.34 if anime else 0.22)
    cv.ellipse(ex - s * rx * 0.35, iy - ir * 0.42, hr, hr, (255, 255, 255))
    if anime:
      cv.ellipse(ex + s * rx * 0.35, iy + ir * 0.45, hr * 0.45, hr * 0.45, (255, 255, 255))
    # Cover the iris outside the lids with skin (only inside the eye's own box).
    top, bot = iy - ir - 0.006, iy + ir + 0.006
    cv.poly(_cat(xs, xs[::-1]), _cat(np.maximum(up, top), np.full_like(up, top)), skin)
    cv.poly(_cat(xs, xs[::-1]), _cat(np.minimum(lo, bot), np.full_like(lo, bot)), skin)
    dark = _OUTLINE if anime else _rgb(skin, 0.35)
    if anime:  # thick upper lash line with an outer flick, thin lower lid
      cv.line(_cat(xs, xs[-1] + s * 0.018), _cat(up, up[-1] - 0.012), dark, 0.014)
      cv.line(xs[9:], lo[9:], dark, 0.005)
    else:
      cv.line(xs, up - 0.016 * (1 - u * u) ** 0.5 - 0.006, _rgb(skin, 0.72), 0.004)
      cv.line(xs, up, dark, 0.008)
      cv.line(xs[4:], lo[4:], _rgb(skin, 0.7), 0.004)


def _draw_brows(cv: _Canvas, p: dict, e: dict, anime: bool):
  col = tuple(
    min(c, k) for c, k in zip(_mix(_rgb(p['hair'], 0.35), _OUTLINE, 0.45), _rgb(p['skin'], 0.4))
  )  # always darker than skin
  h, t = 0.036 * e['brow_height'], e['brow_tilt']
  by = _CY + 0.015 - (0.098 if anime else 0.078)
  th0, th1 = (0.026, 0.013) if anime else (0.024, 0.011)
  q = np.linspace(0, 1, 9)[:, None]
  for s in (-1, 1):
    ex = 0.5 + s * p['sep']
    c = np.array(
      [
        [ex - s * 0.05, by - h - 0.030 * t + 0.004],  # inner end
        [ex + s * 0.015, by - h - 0.026 - 0.008 * t],  # arch control point
        [ex + s * 0.088, by - h + 0.012 + 0.010 * t],
      ]
    )  # outer end
    pts = (1 - q) ** 2 * c[0] + 2 * q * (1 - q) * c[1] + q**2 * c[2]
    d = np.gradient(pts, axis=0)
    nrm = np.c_[-d[:, 1], d[:, 0]] / np.linalg.norm(d, axis=1, keepdims=True)
    half = ((1 - q) * th0 + q * th1) / 2
    side0, side1 = pts + nrm * half, pts - nrm * half
    cv.poly(_cat(side0[:, 0], side1[::-1, 0]), _cat(side0[:, 1], side1[::-1, 1]), col)


def _draw_mouth(cv: _Canvas, p: dict, e: dict, anime: bool):
  b, a = p['b'], p['a']
  my = _CY + 0.58 * b
  hw = 0.4 * a * e['mouth_width'] * (1.0 if anime else 0.95)
  u = np.linspace(-1, 1, 21)
  xs = 0.5 + hw * u
  mid = my - 0.062 * (e['mouth_curve'] * u * u + e['mouth_asym'] * u * np.abs(u))
  oh = 0.11 * e['mouth_open']
  shape = (1 - u * u) ** 0.6
  up, lo = mid - 0.3 * oh * shape, mid + 0.7 * oh * shape
  dark = _OUTLINE if anime else _mix(_rgb(p['skin'], 0.4), (90, 20, 30), 0.5)
  cv.poly(_cat(xs, xs[::-1]), _cat(up, lo[::-1]), (92, 22, 34) if anime else (70, 18, 26))
  if e['mouth_open'] > 0:
    tongue = np.maximum(lo - 0.38 * oh * shape, up)
    cv.poly(_cat(xs, xs[::-1]), _cat(tongue, lo[::-1]), (222, 104, 112))
    teeth = np.minimum(up + 0.5 * oh * e['teeth'] * shape**0.3, lo)
    cv.poly(_cat(xs, xs[::-1]), _cat(up, teeth[::-1]), (252, 252, 250))
  if anime:
    cv.poly(_cat(xs, xs[::-1]), _cat(up, lo[::-1]), None, dark, 0.012)
    cv.line(xs, up, dark, 0.012)
  else:  # lips: tapered coloured rims around the opening and a dark parting line
    lip = _mix(p['skin'], (170, 56, 68), 0.5)
    rim = (1 - u * u) ** 0.5
    cv.poly(_cat(xs, xs[::-1]), _cat(up - 0.004 - 0.012 * rim, up[::-1]), lip)
    cv.poly(_cat(xs, xs[::-1]), _cat(lo, (lo + 0.003 + 0.018 * rim)[::-1]), lip)
    cv.line(xs, up, dark, 0.008)


def _hairline(style, u, phase, flip):
  """y of the front hair's lower edge across the forehead, u in [-1, 1] (never below 0.345)."""
  if style == 'short':
    return 0.285 + 0.05 * u**2
  if style in ('long', 'bun'):
    return 0.235 + 0.105 * np.abs(u) ** 0.6
  if style == 'bangs':
    return 0.335 - 0.035 * (np.arange(u.size) % 2) - 0.006 * np.sin(7 * u + 6 * phase)
  if style == 'spiky':
    return 0.34 - 0.085 * (np.arange(u.size) % 2)
  w = (flip * u + 1) / 2  # bob: side-swept fringe
  return 0.245 + 0.095 * w**1.5 - 0.03 * (np.arange(u.size) % 2) * w


def _draw_hair_front(cv: _Canvas, p: dict, anime: bool):
  a, b = p['a'] * (1.0 if anime else 0.96), p['b']
  style = p['style']
  ha, hb, hy = a * p['vol'], b * p['vol'] * 1.02, _CY - 0.03
  n = {'bangs': 15, 'spiky': 9, 'bob': 11}.get(style, 17)
  u = np.linspace(-1, 1, n)
  xs_top, ys_top = _arc(
    0.5,
    hy,
    ha,
    hb,
    -0.12,
    math.pi + 0.12,
    k=25 if style == 'spiky' else 33,
    spikes=0.12 if style == 'spiky' else 0,
  )
  temple = _CY - (0.0 if style in ('long', 'bangs', 'bob') else 0.05)
  xs = _cat(xs_top, 0.5 - a * 1.0, 0.5 + u * a * 0.9, 0.5 + a * 1.0)
  ys = _cat(ys_top, temple, _hairline(style, u, p['phase'], p['flip']), temple)
  cv.poly(xs, ys, p['hair'], _rgb(p['hair'], 0.45) if anime else None, 0.007, mat='hair')
  if anime:  # a few strand lines give the flat hair some structure
    for k in (-0.5, 0.0, 0.5):
      x0 = 0.5 + k * a * 0.8
      cv.line([x0, x0 + 0.02 * p['flip']], [hy - hb * 0.75, 0.27], _rgb(p['hair'], 0.6), 0.005)


def _shade(img: Image.Image, cv: _Canvas, p: dict, size: int) -> np.ndarray:
  """Photo style: soft position-only lighting on skin and hair (same for every expression)."""
  g = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5) / _ZOOM + 0.5
  x, y = g[None, :], g[:, None]
  a, b = p['a'] * 0.96, p['b']
  dx, dy = (x - 0.5) / a, (y - _CY) / b
  r = np.sqrt(dx * dx + dy * dy)
  light_skin = 1.0 - 0.07 * dx - 0.03 * dy - 0.2 * np.clip((r - 0.55) / 0.45, 0, 1) ** 2
  sheen = np.exp(-(((y - (_CY - 0.78 * b)) / 0.04) ** 2) - ((x - 0.44) / 0.13) ** 2)
  light_hair = 0.86 + 0.45 * sheen - 0.3 * np.clip((y - _CY) / 0.45, 0, 1) - 0.08 * dx
  m = np.asarray(cv.mask.reduce(2), np.float32) / 255.0
  mult = 1.0 + m[..., 0] * (light_skin - 1.0) + m[..., 1] * (light_hair - 1.0)
  out = np.asarray(img, np.float32) * mult[..., None]
  return np.clip(out + 0.5, 0, 255).astype(np.uint8)
