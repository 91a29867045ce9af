"""Image grids and PNG files for samples and evaluation reports."""
import os

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
  """Float images in [-1, 1] -> uint8 [0, 255]."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(cells: np.ndarray, pad: int = 2, fill: int = 255) -> np.ndarray:
  """(rows, cols, H, W, 3) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) picture."""
  rows, cols, h, w, ch = cells.shape
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, ch), fill, np.uint8)
  for r in range(rows):
    for c in range(cols):
      y, x = pad + r * (h + pad), pad + c * (w + pad)
      grid[y:y + h, x:x + w] = cells[r, c]
  return grid


def save_png(path: str, image: np.ndarray, min_size: int = 0) -> None:
  """Writes uint8 HxWx3; small pictures are enlarged (nearest) to at least `min_size` px wide."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  pil = Image.fromarray(image)
  if min_size and pil.width < min_size:
    scale = -(-min_size // pil.width)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
  pil.save(path)
