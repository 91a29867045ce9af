"""Host-side helpers of evaluation: decoding a source's images, and batched jitted calls."""

import jax
import numpy as np

from input_pipeline import pipeline


def decode(source, limit: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `limit` readable items of a source -> (uint8 images, labels)."""
  to_example = pipeline.ToExample(size)
  images, labels = [], []
  for i in range(len(source)):
    if len(images) >= limit:
      break
    example = to_example.map(source[i])
    if example['valid']:
      images.append(example['image'])
      labels.append(int(example['label']))
  if not images:
    raise ValueError(f'no readable image in {source!r}')
  return np.stack(images), np.asarray(labels, np.int32)


def in_batches(fn, arrays: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
  """fn over fixed-size batches (the last padded, so one compilation); outputs concatenated."""
  n = len(arrays[0])
  outs = []
  for start in range(0, n, batch_size):
    chunk = [a[start : start + batch_size] for a in arrays]
    pad = batch_size - len(chunk[0])
    if pad:
      chunk = [np.concatenate([c, np.repeat(c[-1:], pad, axis=0)]) for c in chunk]
    result = jax.device_get(fn(*chunk))
    result = result if isinstance(result, tuple) else (result,)
    outs.append([np.asarray(r)[: batch_size - pad] for r in result])
  return [np.concatenate(parts) for parts in zip(*outs)]
