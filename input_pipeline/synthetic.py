"""Procedural cartoon/anime expression faces: the embedded default data set.

No public face data set can be downloaded here, so faces are rendered from parameters
(numpy + Pillow only, no JAX). An identity (0..249) fixes face shape, skin, hair colour and
style, eye colour and spacing, clothes and background; an expression is a point in a small
continuous space (mouth curve/opening/width/asymmetry, teeth, brow tilt/height, eye opening)
and the discrete classes are prototypes in it, blended from neutral by an intensity in [0, 1].
Expressions only redraw the eyes, brows and mouth, so for any face and target expression the
true answer can be rendered and a translation scored pixel-wise (the "truth renderer").
Two styles of the same identity: flat 'anime' (outlines, big eyes) and shaded 'photo'.
Shapes are drawn at 2-4x supersampling and downsampled for anti-aliasing; deterministic.
"""

from __future__ import annotations

import argparse
import colorsys
import functools
import math
import os

import numpy as np
from PIL import Image
from PIL import ImageFilter

from input_pipeline.drawing import _Canvas
from input_pipeline.drawing import _CY
from input_pipeline.drawing import _draw_base
from input_pipeline.drawing import _draw_brows
from input_pipeline.drawing import _draw_eyes
from input_pipeline.drawing import _draw_hair_front
from input_pipeline.drawing import _draw_mouth
from input_pipeline.drawing import _rgb
from input_pipeline.drawing import _shade

EXPRESSIONS: tuple[str, ...] = (
  'neutral',
  'happy',
  'sad',
  'angry',
  'surprised',
  'fearful',
  'disgusted',
)
STYLES: tuple[str, ...] = ('anime', 'photo')
NUM_IDENTITIES = 250
NUM_TRAIN_IDENTITIES = 200  # identities 0..199 train, 200..249 test
PARAM_NAMES: tuple[str, ...] = (
  'mouth_curve',
  'mouth_open',
  'mouth_width',
  'mouth_asym',
  'teeth',
  'brow_tilt',
  'brow_height',
  'eye_open',
)
# Prototypes, one column per PARAM_NAMES entry. brow_tilt > 0 raises the inner brow ends.
_PROTOTYPES = np.array(
  [
    # curve  open  width  asym  teeth  tilt  height  eye
    [0.00, 0.00, 1.00, 0.00, 0.00, 0.00, 0.00, 1.00],  # neutral
    [1.00, 0.45, 1.10, 0.00, 1.00, 0.00, 0.25, 0.70],  # happy
    [-0.90, 0.00, 0.85, 0.00, 0.00, 1.00, -0.10, 0.75],  # sad
    [-0.45, 0.22, 0.95, 0.00, 1.00, -1.00, -0.70, 0.85],  # angry
    [0.00, 1.00, 0.62, 0.00, 0.00, 0.20, 1.00, 1.40],  # surprised
    [-0.35, 0.55, 1.20, 0.00, 0.60, 0.90, 0.60, 1.30],  # fearful
    [-0.40, 0.18, 0.90, 0.90, 0.50, -0.60, -0.50, 0.45],  # disgusted
  ]
)
_SEED = 0x5EED_FACE
_SKIN = [
  (255, 231, 214),
  (250, 214, 188),
  (238, 194, 160),
  (222, 170, 132),
  (196, 140, 104),
  (162, 110, 80),
  (128, 88, 64),
]
_HAIR = [
  (28, 24, 30),
  (72, 46, 32),
  (124, 80, 44),
  (226, 190, 112),
  (176, 72, 38),
  (205, 205, 215),
  (238, 140, 176),
  (72, 112, 206),
  (76, 160, 112),
  (138, 86, 190),
]
_IRIS = [
  (110, 66, 36),
  (54, 116, 204),
  (50, 146, 88),
  (156, 112, 40),
  (112, 124, 138),
  (196, 60, 56),
  (128, 76, 196),
  (44, 44, 58),
]
_HAIR_STYLES = ('short', 'long', 'bangs', 'spiky', 'bob', 'bun')


def identity_ids(split: str) -> np.ndarray:
  """Identity ids of a split: 'train' (0..199), 'test' (200..249) or 'all'."""
  ranges = {
    'train': (0, NUM_TRAIN_IDENTITIES),
    'test': (NUM_TRAIN_IDENTITIES, NUM_IDENTITIES),
    'all': (0, NUM_IDENTITIES),
  }
  if split not in ranges:
    raise ValueError(f'split must be one of {sorted(ranges)}, got {split!r}')
  return np.arange(*ranges[split], dtype=np.int32)


def _index(value, names: tuple[str, ...], what: str) -> int:
  if isinstance(value, str):
    if value not in names:
      raise ValueError(f'unknown {what} {value!r}; expected one of {names}')
    return names.index(value)
  i = int(value)
  if not 0 <= i < len(names):
    raise ValueError(f'{what} index {i} out of range 0..{len(names) - 1}')
  return i


def expression_params(expression: int | str, intensity: float = 1.0) -> dict[str, float]:
  """Continuous expression parameters: neutral linearly blended into the prototype."""
  e = _index(expression, EXPRESSIONS, 'expression')
  t = float(intensity)
  if not 0.0 <= t <= 1.0:
    raise ValueError(f'intensity must be in [0, 1], got {intensity}')
  n, p = _PROTOTYPES[0], _PROTOTYPES[e]
  return {k: float(n[j] + t * (p[j] - n[j])) for j, k in enumerate(PARAM_NAMES)}


@functools.cache  # 250 small dicts; treat the result as read-only
def _identity_params(identity: int) -> dict:
  """Identity parameters, drawn deterministically from the identity id."""
  if not 0 <= identity < NUM_IDENTITIES:
    raise ValueError(f'identity must be in 0..{NUM_IDENTITIES - 1}, got {identity}')
  r = np.random.default_rng([_SEED, identity])
  u = lambda lo, hi: float(r.uniform(lo, hi))  # noqa: E731
  pick = lambda seq: seq[int(r.integers(len(seq)))]  # noqa: E731
  jit = lambda c, s: _rgb(np.asarray(c) + r.normal(0, s, 3))  # noqa: E731
  h0 = u(0, 1)
  bg0 = colorsys.hsv_to_rgb(h0, u(0.15, 0.45), u(0.75, 0.97))
  bg1 = colorsys.hsv_to_rgb((h0 + u(-0.15, 0.15)) % 1, u(0.2, 0.6), u(0.55, 0.9))
  gradient = r.random() < 0.5
  return dict(
    a=u(0.245, 0.285),
    b=u(0.30, 0.335),
    jaw=u(0.0, 1.0),
    vol=u(1.06, 1.16),
    skin=jit(pick(_SKIN), 6),
    hair=jit(pick(_HAIR), 10),
    style=pick(_HAIR_STYLES),
    long_back=bool(r.random() < 0.5),
    flip=pick((-1.0, 1.0)),
    phase=u(0, 1),
    iris=jit(pick(_IRIS), 10),
    sep=u(0.100, 0.125),
    esize=u(0.92, 1.08),
    bg0=_rgb(np.array(bg0) * 255),
    bg1=_rgb(np.array(bg1 if gradient else bg0) * 255),
    shirt=_rgb(np.array(colorsys.hsv_to_rgb(u(0, 1), u(0.3, 0.8), u(0.35, 0.9))) * 255),
    blush=bool(r.random() < 0.6),
  )


def render_face_params(
  identity: int, params: dict[str, float], style: int | str = 'anime', size: int = 128
) -> np.ndarray:
  """Renders an identity with arbitrary continuous expression params -> uint8 (size, size, 3)."""
  anime = _index(style, STYLES, 'style') == 0
  size = int(size)
  if size < 8:
    raise ValueError(f'size must be >= 8, got {size}')
  unknown = set(params) - set(PARAM_NAMES)
  if unknown:
    raise ValueError(f'unknown expression params {sorted(unknown)}; known: {PARAM_NAMES}')
  e = dict(expression_params(0, 0.0), **params)
  p = _identity_params(int(identity))
  n = size * min(4, max(2, math.ceil(512 / size)))
  cv = _Canvas(n, p['bg0'], p['bg1'], mask_n=0 if anime else size * 2)
  _draw_base(cv, p, anime)
  _draw_eyes(cv, p, e, anime)
  if anime and p['blush']:
    for s in (-1, 1):
      cv.ellipse(0.5 + s * (p['sep'] + 0.015), _CY + 0.11, 0.045, 0.018, (255, 110, 130, 70))
  _draw_brows(cv, p, e, anime)
  _draw_mouth(cv, p, e, anime)
  _draw_hair_front(cv, p, anime)
  img = cv.img.reduce(n // size)  # box filter over the supersamples: anti-aliasing
  if anime:
    return np.array(img, dtype=np.uint8)
  img = img.filter(ImageFilter.BoxBlur(0.5 * size / 128))  # photo: softer edges
  return _shade(img, cv, p, size)


def render_face(
  identity: int,
  expression: int | str,
  intensity: float = 1.0,
  style: int | str = 'anime',
  size: int = 128,
) -> np.ndarray:
  """The truth renderer: (identity, expression, intensity, style, size) -> uint8 image."""
  return render_face_params(identity, expression_params(expression, intensity), style, size)


_CACHE_BYTES = 64 << 20  # per process: every 32 px training face; about 1,400 at 128 px
_cache: dict[tuple, np.ndarray] = {}


def _render_cached(
  identity: int, expression: int, intensity: float, style: int, size: int
) -> np.ndarray:
  """render_face, remembered per process (the renderer limits the input pipeline's speed);
  past the byte budget new faces are rendered and not kept. Callers get a copy."""
  key = (identity, expression, intensity, style, size)
  image = _cache.get(key)
  if image is None:
    image = render_face(identity, expression, intensity, style, size)
    if (len(_cache) + 1) * image.nbytes <= _CACHE_BYTES:
      _cache[key] = image
  return image.copy()


class SyntheticFaces:
  """Grain-compatible random-access source of rendered faces (renders on the fly, and keeps
  what it rendered within a memory budget per process).

  Index i -> identity ids[i // num_classes], expression i % num_classes. Holds only a few
  small fields, so it pickles cheaply into grain worker processes.
  """

  def __init__(
    self,
    split: str = 'train',
    size: int = 128,
    num_classes: int = 5,
    style: int | str = 'anime',
    intensity_range=(1.0, 1.0),
    seed: int = 0,
  ):
    if not 2 <= int(num_classes) <= len(EXPRESSIONS):
      raise ValueError(f'num_classes must be in 2..{len(EXPRESSIONS)}, got {num_classes}')
    lo, hi = (float(v) for v in intensity_range)
    if not 0.0 <= lo <= hi <= 1.0:
      raise ValueError(f'intensity_range must satisfy 0 <= lo <= hi <= 1, got {(lo, hi)}')
    self.split, self.size, self.num_classes = split, int(size), int(num_classes)
    self.style = _index(style, STYLES, 'style')
    self.intensity_range, self.seed = (lo, hi), int(seed)
    self._ids = identity_ids(split)
    self.class_names: tuple[str, ...] = EXPRESSIONS[: self.num_classes]

  def __len__(self) -> int:
    return len(self._ids) * self.num_classes

  def params(self, index: int) -> tuple[int, int, float]:
    """(identity, expression, intensity) of an index."""
    i = int(index)
    if not 0 <= i < len(self):
      raise IndexError(f'index {index} out of range for {len(self)} faces')
    ident, expr = int(self._ids[i // self.num_classes]), i % self.num_classes
    lo, hi = self.intensity_range
    t = hi if lo == hi else float(np.random.default_rng([self.seed, i]).uniform(lo, hi))
    return ident, expr, (0.0 if expr == 0 else t)

  def labels(self) -> np.ndarray:
    """Every item's expression label, without rendering."""
    return (np.arange(len(self)) % self.num_classes).astype(np.int32)

  def __getitem__(self, index) -> dict:
    ident, expr, t = self.params(index)
    return {
      'image': _render_cached(ident, expr, t, self.style, self.size),
      'label': np.int32(expr),
      'identity': np.int32(ident),
      'intensity': np.float32(t),
      'style': np.int32(self.style),
    }

  def __repr__(self):
    return f'SyntheticFaces({self.split!r}, size={self.size}, classes={self.num_classes})'


def write_contact_sheet(path: str, identities=(3, 17, 200), size: int = 128, gap: int = 2):
  """Picture of the benchmark: identities x styles by 7 expressions, then intensity ramps."""
  rows = [
    [render_face(i, e, 1.0, st, size) for e in range(len(EXPRESSIONS))]
    for i in identities
    for st in STYLES
  ]
  for e in ('happy', 'surprised'):
    rows.append(
      [render_face(identities[0], e, t, 'anime', size) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    )
  cols = len(EXPRESSIONS)
  sheet = np.full((gap + len(rows) * (size + gap), gap + cols * (size + gap), 3), 255, np.uint8)
  for r, row in enumerate(rows):
    for c, im in enumerate(row):
      y, x = gap + r * (size + gap), gap + c * (size + gap)
      sheet[y : y + size, x : x + size] = im
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(sheet).save(path, optimize=True)
  return sheet


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(
    description='Write synthetic expression faces as PNG files '
    'in class folders (DIR/<expression>/<index>.png).'
  )
  ap.add_argument('--out', help='output directory')
  ap.add_argument('--num', type=int, default=0, help='number of faces (wraps around)')
  ap.add_argument('--size', type=int, default=128)
  ap.add_argument('--split', default='train', choices=('train', 'test', 'all'))
  ap.add_argument('--style', default='anime', choices=STYLES)
  ap.add_argument('--num_classes', type=int, default=5)
  ap.add_argument('--sheet', help='also write a contact sheet PNG to this path')
  args = ap.parse_args(argv)
  if args.sheet:
    write_contact_sheet(args.sheet)
    print(f'wrote contact sheet {args.sheet}')
  if not args.out:
    if not args.sheet:
      ap.error('--out (or --sheet) is required')
    return 0
  if args.num <= 0:
    ap.error('--num must be a positive number of faces')
  src = SyntheticFaces(args.split, args.size, args.num_classes, args.style)
  for name in src.class_names:
    os.makedirs(os.path.join(args.out, name), exist_ok=True)
  step = max(1, args.num // 10)
  for k in range(args.num):
    item = src[k % len(src)]
    name = src.class_names[int(item['label'])]
    Image.fromarray(item['image']).save(os.path.join(args.out, name, f'{k:06d}.png'))
    if (k + 1) % step == 0 or k + 1 == args.num:
      print(f'{k + 1}/{args.num} faces written to {args.out}', flush=True)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
