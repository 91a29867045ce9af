"""Robust image decoding: bytes or a file -> uint8 (size, size, 3) RGB.

Every way a file can be bad (empty, not an image, truncated, zero-sized, too large, an
out-of-range crop box) becomes one exception type, `DecodeError`, whose message says what was
wrong, so the pipeline can skip, count and log the file instead of dying (see design.md). Every
Pillow mode a photo or a scan can come in is mapped to RGB the way a viewer would show it:
EXIF orientation applied, transparency composited onto white, 16-bit and float grey levels
rescaled rather than clipped.

Decoding is memory-bounded: a JPEG is decoded reduced (1/2 to 1/8) when the output allows it,
an image that would still decode to more than `max_pixels` pixels (config.data.max_pixels) is
rejected from its header, before any pixel is decoded, and the decodes running at once in a
process (grain's threads) hold at most that many pixels together.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import io
import struct
import threading

import numpy as np
from PIL import Image
from PIL import ImageOps

from jaxpr_gan import storage

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

# Formats Pillow may open. Content is trusted over the file name (a PNG saved as .jpg is fine),
# but not beyond these: plugins such as EPS would hand untrusted bytes to external programs.
# The JPEG opener also yields MPO images (multi-picture JPEGs from many cameras).
_ALLOWED_FORMATS = ('JPEG', 'PNG', 'BMP', 'DIB', 'WEBP', 'GIF', 'TIFF')

# The most pixels one image may decode to (after JPEG's reduction), and the decodes running at
# once in a process together: 8000x8000. A decode takes 3 bytes a pixel and a few times that
# while converting (192 MB, under 1 GB in all). A 12000x12000 (144 MP) PNG, which Pillow's own
# check (2 * Image.MAX_IMAGE_PIXELS, about 179 MP) lets through, is rejected.
MAX_PIXELS = 64_000_000

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


class DecodeError(Exception):
  """An image could not be decoded; the message says why (and, from load_image, where)."""


def _grey_to_uint8(img: Image.Image) -> Image.Image:
  """16-bit/32-bit integer and float grey images -> 'L', rescaled to the full 0..255 range.

  Pillow's own convert('L') clips these to 0..255, which turns a 16-bit scan white. Integer
  modes are read as 16-bit (0..65535 -> 0..255). Float images are taken as 0..1 when their
  maximum is at most 1, else as 0..255.
  """
  arr = np.asarray(img)
  if img.mode == 'F':
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
    out = np.clip(np.rint(arr * scale), 0, 255)
  else:
    arr = np.clip(arr, 0, 65535).astype(np.int32)  # *255 stays below 2**24
    out = (arr * 255 + 32767) // 65535  # rounded, exact at 0 and 65535
  return Image.fromarray(out.astype(np.uint8), mode='L')


def _to_rgb(img: Image.Image) -> Image.Image:
  """Any Pillow mode -> 'RGB'; anything with transparency is composited onto white."""
  if img.mode.startswith('I') or img.mode == 'F':
    img = _grey_to_uint8(img)
  if img.mode == 'RGB':
    return img
  if 'A' in img.getbands() or img.mode in ('La', 'RGBa') or 'transparency' in img.info:
    rgba = img.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert('RGB')
  return img.convert('RGB')  # 'L', '1', 'P', 'CMYK', 'YCbCr', ...


def _crop_box(upright_size, crop_box):
  """The region to keep, in upright (post-EXIF) pixel coordinates: crop_box or a centre square."""
  w, h = upright_size
  if crop_box is None:
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return (left, top, left + side, top + side)
  left, top, right, bottom = crop_box
  if not (0 <= left < right <= w and 0 <= top < bottom <= h):
    raise DecodeError(f'crop_box {tuple(crop_box)} is empty or outside the {w}x{h} image')
  return tuple(crop_box)


def _check_pixels(full, decoded, shrink: int, max_pixels: int) -> None:
  """Raises DecodeError when the `decoded` (w, h) holds more than `max_pixels` pixels."""
  w, h = decoded
  if w * h <= max_pixels:
    return
  what = f'{full[0]}x{full[1]} = {full[0] * full[1]} pixels'
  if shrink > 1:
    what += f', {w}x{h} = {w * h} decoded at 1/{shrink}'
  raise DecodeError(
    f'image too large: {what}, over the limit of {max_pixels} pixels '
    '(raise config.data.max_pixels to decode it)'
  )


class _PixelBudget:
  """Caps the pixels of the decodes in flight in this process at the limit (an image alone
  always runs): grain decodes in many threads (16 by default), each holding its own image."""

  def __init__(self):
    self._changed = threading.Condition()
    self._in_flight = 0

  @contextlib.contextmanager
  def hold(self, pixels: int, max_pixels: int) -> Iterator[None]:
    with self._changed:
      self._changed.wait_for(lambda: not self._in_flight or self._in_flight + pixels <= max_pixels)
      self._in_flight += pixels
    try:
      yield
    finally:
      with self._changed:
        self._in_flight -= pixels
        self._changed.notify_all()


_BUDGET = _PixelBudget()


def _upright_box(img: Image.Image, crop_box):
  """The region to keep (`_crop_box`) of the image as EXIF orientation shows it."""
  w, h = img.size
  orientation = img.getexif().get(_ORIENTATION_TAG, 1)
  return _crop_box((h, w) if orientation in _SWAPS_AXES else (w, h), crop_box)


def _draft_jpeg(img: Image.Image, box, size: int) -> int:
  """Asks the JPEG decoder for 1/2, 1/4 or 1/8 scale, the largest reduction that keeps at least
  `size` pixels across `box` (what Image.thumbnail does); -> the reduction granted."""
  w, h = img.size
  limit = min(box[2] - box[0], box[3] - box[1]) // size
  shrink = max((s for s in (8, 4, 2, 1) if s <= limit), default=1)
  drafted = img.draft(img.mode, (w // shrink, h // shrink)) if shrink > 1 else None
  return round(w / drafted[1][2]) if drafted else 1  # draft returns (mode, (0, 0, w/s, h/s))


def _decode(data: bytes, size: int, crop_box, max_pixels: int) -> np.ndarray:
  img = Image.open(io.BytesIO(data), formats=_ALLOWED_FORMATS)  # reads the header only
  full = img.size
  if full[0] <= 0 or full[1] <= 0:
    raise DecodeError(f'image has zero size ({full[0]}x{full[1]})')
  box, shrink = None, 1
  if img.format in ('JPEG', 'MPO'):  # EXIF in the header; decodes reduced almost for free
    box = _upright_box(img, crop_box)
    shrink = _draft_jpeg(img, box, size)
  _check_pixels(full, img.size, shrink, max_pixels)  # img.size: what load() will decode
  with _BUDGET.hold(img.size[0] * img.size[1], max_pixels):
    if box is None:  # only now: a PNG's getexif decodes the whole image to find its EXIF
      box = _upright_box(img, crop_box)
    img.load()  # force the full decode so truncated files fail here, not later
    ImageOps.exif_transpose(img, in_place=True)
    img = _to_rgb(img)
    box = tuple(c / shrink for c in box)
    img = img.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8).reshape(size, size, 3)


def decode_image(
  data: bytes,
  size: int,
  *,
  crop_box: tuple[int, int, int, int] | None = None,
  max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
  """Decodes encoded image bytes to a uint8 (size, size, 3) RGB array.

  The upright image (EXIF orientation applied) is cropped to `crop_box` (left, top, right,
  bottom, in upright pixels; used as given, so a non-square box is stretched) or else to its
  centre square, then resized with Lanczos antialiasing. Raises DecodeError for anything that
  is not a decodable image in JPEG/PNG/BMP/WEBP/GIF/TIFF, for a crop box outside the image, and
  for an image that would decode to more than `max_pixels` pixels (checked before decoding).
  """
  if not isinstance(size, (int, np.integer)) or size <= 0:
    raise ValueError(f'size must be a positive integer, got {size!r}')
  if not data:
    raise DecodeError('empty data (0 bytes)')
  with _decode_errors(data):
    return _decode(bytes(data), int(size), crop_box, int(max_pixels))


def header_size(data: bytes) -> tuple[int, int]:
  """(width, height) from an image's header, without decoding its pixels; DecodeError (as
  `decode_image` raises it) when the header is unreadable or the format not allowed."""
  if not data:
    raise DecodeError('empty data (0 bytes)')
  with _decode_errors(data):
    with Image.open(io.BytesIO(bytes(data)), formats=_ALLOWED_FORMATS) as img:
      return tuple(img.size)


@contextlib.contextmanager
def _decode_errors(data: bytes) -> Iterator[None]:
  """Turns every exception Pillow raises on malformed input into a DecodeError saying why."""
  try:
    yield
  except DecodeError:
    raise
  except Image.UnidentifiedImageError as e:
    raise DecodeError(
      f'not an image in a supported format ({"/".join(_ALLOWED_FORMATS)}); '
      f'first bytes {bytes(data[:8])!r}'
    ) from e
  except Image.DecompressionBombError as e:
    raise DecodeError(f"image too large: {e} (Pillow's Image.MAX_IMAGE_PIXELS check)") from e
  except (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    struct.error,
    ZeroDivisionError,
    MemoryError,
  ) as e:
    # Pillow plugins raise all of these on malformed input.
    raise DecodeError(f'cannot decode image: {type(e).__name__}: {e}') from e


def read_file(path: str) -> bytes:
  """The bytes of a file or a gs:// or s3:// object; DecodeError naming it when unreadable."""
  try:
    return storage.read_bytes(path)
  except OSError as e:
    raise DecodeError(f'{path}: cannot read file: {e}') from e
  except Exception as e:  # noqa: BLE001  (gcsfs and aiohttp raise their own kinds)
    if not storage.is_remote(path):
      raise
    raise DecodeError(f'{path}: cannot read file: {type(e).__name__}: {e}') from e


def load_image(
  path: str,
  size: int,
  *,
  crop_box: tuple[int, int, int, int] | None = None,
  max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
  """Reads and decodes one image file (a path, or a gs:// or s3:// URL read whole, then); every
  failure is a DecodeError that names the path."""
  data = read_file(path)
  if not data:
    raise DecodeError(f'{path}: empty file (0 bytes)')
  try:
    return decode_image(data, size, crop_box=crop_box, max_pixels=max_pixels)
  except DecodeError as e:
    raise DecodeError(f'{path}: {e}') from e
