"""A small image-folder data set with every image mode and every kind of bad file we handle.

Good images have known content so tests can check colour and orientation after decoding:
mostly a red left half and a blue right half (RED | BLUE). Non-square images carry green
margins that a correct centre crop removes.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
CLASS_NAMES = ['angry', 'happy', 'neutral']
GRAY_LEFT, GRAY_RIGHT = 50, 200  # grey levels of gray.png's halves
GRAY16_STRIPES = (0, 32768, 65535)  # gray16.png: three vertical stripes, left to right


def halves(w: int, h: int, left=RED, right=BLUE) -> np.ndarray:
  """uint8 (h, w, 3): left half `left`, right half `right`."""
  img = np.empty((h, w, 3), np.uint8)
  img[:, : w // 2] = left
  img[:, w // 2 :] = right
  return img


def exif_rotated_jpeg(size: int) -> bytes:
  """JPEG with EXIF orientation 6 whose upright picture is `size` wide and 2*size tall.

  Upright, its centre square shows green top-left, red top-right and blue bottom half; a
  decoder that ignores the tag, or turns the wrong way, or mirrors, shows something else.
  The stored pixels are the upright picture turned 90 degrees anticlockwise (orientation 6
  asks the viewer to turn them clockwise).
  """
  s = size
  upright = np.empty((2 * s, s, 3), np.uint8)
  upright[:s] = RED
  upright[s // 2 : s, : s // 2] = GREEN
  upright[s:] = BLUE
  stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
  exif = Image.Exif()
  exif[0x0112] = 6
  buf = io.BytesIO()
  stored.save(buf, 'JPEG', quality=95, exif=exif.tobytes())
  return buf.getvalue()


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  img.save(buf, fmt, **kwargs)
  return buf.getvalue()


def good_images(size: int) -> dict[str, tuple[str, bytes]]:
  """kind -> (relative path, encoded bytes) for every good image of the fixture."""
  s = size
  rgb = Image.fromarray(halves(s, s))
  gray = np.full((s, s), GRAY_LEFT, np.uint8)
  gray[:, s // 2 :] = GRAY_RIGHT
  rgba = np.zeros((s, s, 4), np.uint8)
  rgba[:, : s // 2] = RED + (255,)
  rgba[:, s // 2 :] = GREEN + (0,)  # fully transparent; its colour must not show through
  palette = rgb.quantize(colors=2)  # 'P' with exactly two entries
  p_transparent = Image.new('P', (s, s), 0)  # index 0 = red, index 1 = green (transparent)
  p_transparent.paste(1, (s // 2, 0, s, s))
  p_transparent.putpalette(RED + GREEN)
  gray16 = np.empty((s, s), np.uint16)
  for i, v in enumerate(GRAY16_STRIPES):
    gray16[:, i * s // 3 : (i + 1) * s // 3] = v
  wide = np.concatenate(
    [
      np.full((s, s // 2, 3), GREEN, np.uint8),
      halves(s, s),
      np.full((s, s // 2, 3), GREEN, np.uint8),
    ],
    axis=1,
  )
  tall = np.concatenate(
    [
      np.full((s // 2, s, 3), GREEN, np.uint8),
      halves(s, s),
      np.full((s // 2, s, 3), GREEN, np.uint8),
    ],
    axis=0,
  )
  images = {
    'rgb_jpeg': ('happy/rgb.JPG', _encode(rgb, 'JPEG', quality=95)),  # upper-case extension
    'rgb_png': ('happy/rgb.png', _encode(rgb, 'PNG')),
    'gray_png': ('happy/gray.png', _encode(Image.fromarray(gray), 'PNG')),
    'rgba_png': ('angry/rgba.png', _encode(Image.fromarray(rgba), 'PNG')),
    'palette_png': ('angry/palette.png', _encode(palette, 'PNG')),
    'palette_transparent_png': (
      'angry/palette_transparent.png',
      _encode(p_transparent, 'PNG', transparency=1),
    ),
    'gray16_png': ('neutral/gray16.png', _encode(Image.fromarray(gray16), 'PNG')),
    'cmyk_jpeg': ('neutral/cmyk.jpg', _encode(rgb.convert('CMYK'), 'JPEG', quality=95)),
    'exif_rotated_jpeg': ('neutral/exif_rotated.jpeg', exif_rotated_jpeg(s)),
    'wide_bmp': ('happy/wide.bmp', _encode(Image.fromarray(wide), 'BMP')),
    'tall_webp': ('angry/tall.webp', _encode(Image.fromarray(tall), 'WEBP', lossless=True)),
  }
  return images


def bad_files(size: int) -> dict[str, tuple[str, bytes]]:
  """kind -> (relative path, bytes) for files with an image extension that cannot be decoded."""
  noise = np.random.default_rng(0).integers(0, 256, (2 * size, 2 * size, 3), dtype=np.uint8)
  jpeg = _encode(Image.fromarray(noise), 'JPEG', quality=95)
  return {
    'truncated_jpeg': ('happy/truncated.jpg', jpeg[: len(jpeg) // 2]),
    'empty_jpeg': ('angry/empty.jpg', b''),
    'text_jpeg': ('neutral/notes.jpg', b'These are notes, not a picture.\n'),
  }


def make_mixed_image_folder(root, size: int = 40) -> dict:
  """Writes root/<class>/ with the images above, bad files and files that must be ignored.

  Returns {'num_good', 'num_bad', 'bad_paths', 'class_names', 'paths' (kind -> absolute path)}.
  `size` should be a multiple of 4 so the colour regions have whole-pixel borders.
  """
  root = os.fspath(root)
  good, bad = good_images(size), bad_files(size)
  ignored = {
    'readme': ('neutral/readme.txt', b'not an image extension\n'),
    'hidden_file': ('happy/.hidden.png', good['rgb_png'][1]),
    'hidden_dir': ('.cache/rgb.png', good['rgb_png'][1]),  # not a class
  }
  paths = {}
  for kind, (rel, data) in {**good, **bad, **ignored}.items():
    path = os.path.join(root, *rel.split('/'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(data)
    paths[kind] = path
  return {
    'num_good': len(good),
    'num_bad': len(bad),
    'bad_paths': [paths[k] for k in bad],
    'class_names': list(CLASS_NAMES),
    'paths': paths,
  }
