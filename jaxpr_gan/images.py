"""Images at the library's edges: the one uint8 <-> float conversion, grids and PNG files.

Inside the library images are NHWC float in [-1, 1]: x = uint8 / 127.5 - 1 (RGB). Every
conversion goes through `to_float` and `to_uint8`, on NumPy or JAX arrays alike.
"""

import os

import numpy as np
from PIL import Image

from jaxpr_gan import files

NORMALISATION = 'RGB, x = uint8 / 127.5 - 1 in [-1, 1]; outputs the same; mask in [0, 1]'


def to_float(images):
  """uint8 [0, 255] -> float32 [-1, 1] (a NumPy array stays one, a JAX array stays one)."""
  return images.astype(np.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
  """Float images in [-1, 1] -> uint8 [0, 255] (rounded, clipped), as a NumPy array."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def mask_to_uint8(masks) -> np.ndarray:
  """Masks (..., H, W) in [0, 1] -> uint8 (..., H, W, 3) grey pictures (white: 1)."""
  grey = np.clip(np.rint(np.asarray(masks, np.float32) * 255), 0, 255).astype(np.uint8)
  return np.repeat(grey[..., None], 3, -1)


def image_grid(cells: np.ndarray, pad: int = 2, fill: int = 255) -> np.ndarray:
  """(rows, cols, H, W, 3) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) picture."""
  rows, cols, h, w, ch = cells.shape
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, ch), fill, np.uint8)
  for r in range(rows):
    for c in range(cols):
      y, x = pad + r * (h + pad), pad + c * (w + pad)
      grid[y : y + h, x : x + w] = cells[r, c]
  return grid


def save_png(path: str, image: np.ndarray, min_size: int = 0) -> None:
  """Writes uint8 HxWx3 (a local path, gs:// or s3://: files.atomic_write); small pictures are
  enlarged (nearest) to at least `min_size` px wide."""
  if not files.is_remote(path):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  pil = Image.fromarray(image)
  if min_size and pil.width < min_size:
    scale = -(-min_size // pil.width)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
  with files.atomic_write(path, 'wb') as f:
    pil.save(f, format='PNG')
