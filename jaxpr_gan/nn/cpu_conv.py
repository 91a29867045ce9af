"""The CPU fast path of the convolutions: the same sums as XLA's own, with gradients that
XLA:CPU runs fast (docs/performance.md).

Used only where `jaxpr_gan.nn.conv` selects it: on the CPU backend with `conv_impl` 'auto' or
'cpu_fast'. GPUs and TPUs run XLA's convolutions. Every function here takes the padding
normalised, ((top, bottom), (left, right)) of the (dilated) input.
"""

import functools

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

_NHWC = ('NHWC', 'HWIO', 'NHWC')
Pads = tuple[tuple[int, int], tuple[int, int]]


def _conv(x, kernel, stride: int, pads: Pads):
  return lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=_NHWC)


def _kernel_grad_by_output_taps(x, g, size: tuple[int, int], pads: Pads):
  """d(conv)/d(kernel) of a stride-1 convolution with few outputs: the taps slide over the
  output gradient, one ((kw*out) x N) @ (N x in) product per kernel row, so the copies are of
  the narrow side (one product for all rows: 1.6 times slower, docs/benchmarks.md)."""
  flipped = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(size, pads))
  gp = jnp.pad(g, ((0, 0), *flipped, (0, 0)))
  h, w = x.shape[1:3]
  xm = x.reshape(-1, x.shape[-1])
  rows = [
    jnp.concatenate([gp[:, ky : ky + h, kx : kx + w] for kx in range(size[1])], axis=-1)
    for ky in range(size[0])
  ]
  dk = jnp.stack([r.reshape(-1, r.shape[-1]).T @ xm for r in rows])
  return jnp.flip(dk.reshape(*size, g.shape[-1], x.shape[-1]), (0, 1)).swapaxes(2, 3)


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, pads: Pads) -> jnp.ndarray:
  """A convolution (NHWC, HWIO) with gradients that XLA:CPU runs fast.

  XLA derives the input gradient of a strided convolution as a convolution over the output
  gradient dilated with zeros, which XLA:CPU runs over 100 times slower than needed (4.7 s
  against 0.034 s for the last layer of StarGAN's discriminator at 128 px). Here that gradient
  is `transposed_conv` (no dilation). The kernel gradient is XLA's own, except for a stride-1
  convolution to fewer than 8 channels (the conv to RGB), where matrix products over the
  output gradient's taps are 3.9 times faster (docs/benchmarks.md). The same sums; the backward
  pass is itself differentiable (the gradient penalty's second order). A float32 3 x 3
  stride-1 convolution of 256 channels or more in and out, over 256 output tiles or more, runs
  as Winograd's F(4x4, 3x3) (`_winograd_conv`; 1.1 to 1.8 times faster forward and backward
  where it applies, docs/benchmarks.md).
  """
  if _winograd_applies(x, kernel, stride, pads):
    return _winograd_conv(x, kernel, pads)
  return _conv2d(x, kernel, stride, pads)


def _forward(x, kernel, stride: int, pads: Pads):
  """XLA's convolution; for a stride-1 one to at most 8 channels from more (the conv to RGB,
  and the input gradient of the first conv), the overlap-added matrix product, 1.5 to 3.6
  times faster on XLA:CPU at StarGAN's sizes (docs/benchmarks.md)."""
  kh, kw, cin, cout = kernel.shape
  if stride == 1 and cout <= 8 < cin and kh == kw:
    sizes = [n + lo + hi - k + 1 for n, (lo, hi), k in zip(x.shape[1:3], pads, kernel.shape[:2])]
    return _overlap_add_conv_transpose(x, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), 1, pads, sizes)
  return _conv(x, kernel, stride, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv2d(x, kernel, stride: int, pads: Pads):
  return _forward(x, kernel, stride, pads)


def _conv2d_fwd(x, kernel, stride, pads):
  return _forward(x, kernel, stride, pads), (x, kernel)


def _conv2d_bwd(stride, pads, residuals, g):
  x, kernel = residuals
  size = kernel.shape[:2]
  if stride > 1:
    # Rows of x that no window reached get 0 from the `after` padding.
    before = [k - 1 - lo for k, (lo, _) in zip(size, pads)]
    after = [
      n + k - 2 - (m - 1) * stride - b
      for n, m, k, b in zip(x.shape[1:3], g.shape[1:3], size, before)
    ]
    dx = transposed_conv(g.astype(kernel.dtype), kernel, stride, tuple(zip(before, after)))
  elif all(max(lo, hi) < k for k, (lo, hi) in zip(size, pads)):
    # The input gradient of a stride-1 convolution is one: flipped kernel, in and out swapped.
    dx = _conv2d(
      g.astype(kernel.dtype),
      jnp.flip(kernel, (0, 1)).swapaxes(2, 3),
      1,
      tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(size, pads)),
    )
  else:
    dx = jax.vjp(lambda x: _conv(x, kernel, stride, pads), x)[1](g)[0]
  g = g.astype(x.dtype)
  if stride == 1 and kernel.shape[-1] < 8:
    dk = _kernel_grad_by_output_taps(x, g, size, pads)
  else:
    dk = jax.vjp(lambda k: _conv(x, k, stride, pads), kernel)[1](g)[0]
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


# Winograd's F(4x4, 3x3) (Lavin & Gray 2016): a 6 x 6 input tile d gives the 4 x 4 output tile
# AT (G k G^T * BT d B) A, the products being 36 matrix products over the channels.
_BT = np.array(
  [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  np.float32,
)
_G = np.array(
  [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  np.float32,
)
_AT = np.array(
  [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float32
)
_WINOGRAD_MIN_CHANNELS = 256
_WINOGRAD_MIN_TILES = 256


def _winograd_applies(x, kernel, stride: int, pads: Pads) -> bool:
  """Where F(4x4, 3x3) measured faster than XLA:CPU's convolution, forward and backward
  together (docs/benchmarks.md): 256 channels or more in and out (with 64 its transforms, not
  its products, set the pace) and 256 output tiles or more (the batch as traced: a sharded
  batch gives each device fewer; a symbolic batch, as in an export for any batch size, keeps
  the direct convolution). float32 only: its transforms lose more than bfloat16 can spare."""
  if not (
    stride == 1
    and kernel.shape[:2] == (3, 3)
    and x.dtype == jnp.float32
    and kernel.dtype == jnp.float32
    and min(kernel.shape[2:]) >= _WINOGRAD_MIN_CHANNELS
    and all(0 <= p <= 2 for pair in pads for p in pair)
  ):
    return False
  if jax.export.is_symbolic_dim(x.shape[0]):
    return False
  return x.shape[0] * np.prod(_winograd_sizes(x, pads)[2:]) >= _WINOGRAD_MIN_TILES


def _combine(mat, parts):
  """[sum_j mat[i, j] parts[j] for each row i], skipping the zeros of the small integer or
  fractional transform matrices."""
  out = []
  for row in mat:
    terms = [p if c == 1 else -p if c == -1 else p * float(c) for c, p in zip(row, parts) if c]
    out.append(functools.reduce(jnp.add, terms))
  return out


def _separable(mat, rows, columns_of):
  """mat d mat^T for a tile d given as its rows, `columns_of(row)` splitting a row into its
  columns: the entries, row by row."""
  return [t for row in _combine(mat, rows) for t in _combine(mat, columns_of(row))]


def _winograd_sizes(x, pads):
  oh, ow = (n + lo + hi - 2 for n, (lo, hi) in zip(x.shape[1:3], pads))
  return oh, ow, -(-oh // 4), -(-ow // 4)


def _winograd_input(x, pads) -> jnp.ndarray:
  """The transformed 6 x 6 input tiles at stride 4: (36, B * tiles, in)."""
  b, h, w, c = x.shape
  _, _, th, tw = _winograd_sizes(x, pads)
  # Padded row 4 i + r (r < 6) is row r % 4 of block i + r // 4: slices, not strided ones.
  xp = jnp.pad(
    x,
    (
      (0, 0),
      (pads[0][0], 4 * th + 4 - h - pads[0][0]),
      (pads[1][0], 4 * tw + 4 - w - pads[1][0]),
      (0, 0),
    ),
  )
  xp = xp.reshape(b, th + 1, 4, tw + 1, 4, c)
  tiles = _separable(
    _BT,
    [xp[:, r // 4 : r // 4 + th, r % 4] for r in range(6)],
    lambda row: [row[:, :, s // 4 : s // 4 + tw, s % 4] for s in range(6)],
  )
  return jnp.stack(tiles).reshape(36, b * th * tw, c)


def _winograd_output_grad(g, th: int, tw: int) -> jnp.ndarray:
  """The output transform's transpose applied to g: (36, B * tiles, out)."""
  b, oh, ow, c = g.shape
  g = jnp.pad(g, ((0, 0), (0, 4 * th - oh), (0, 4 * tw - ow), (0, 0)))
  g = g.reshape(b, th, 4, tw, 4, c)
  tiles = _separable(
    _AT.T, [g[:, :, p] for p in range(4)], lambda row: [row[:, :, :, q] for q in range(4)]
  )
  return jnp.stack(tiles).reshape(36, b * th * tw, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _winograd_conv(x, kernel, pads: Pads):
  """`_conv2d(x, kernel, 1, pads)` for a 3 x 3 kernel by F(4x4, 3x3): 4 times fewer products,
  float32 results within about 2e-5 of the direct sums (relative to the largest output)."""
  b = x.shape[0]
  oh, ow, th, tw = _winograd_sizes(x, pads)
  u = jnp.einsum('ik,jl,klco->ijco', _G, _G, kernel).reshape(36, *kernel.shape[2:])
  m = lax.dot_general(_winograd_input(x, pads), u, (((2,), (1,)), ((0,), (0,))))
  m = m.reshape(6, 6, b, th, tw, -1)
  outs = _separable(_AT, [m[i] for i in range(6)], lambda row: [row[j] for j in range(6)])
  out = jnp.stack(
    [jnp.stack(outs[4 * p : 4 * p + 4], axis=3) for p in range(4)], axis=2
  )  # (B, th, 4, tw, 4, out)
  return out.reshape(b, 4 * th, 4 * tw, -1)[:, :oh, :ow]


def _winograd_fwd(x, kernel, pads):
  return _winograd_conv(x, kernel, pads), (x, kernel)


def _winograd_bwd(pads, residuals, g):
  """The input gradient is again a 3 x 3 convolution (flipped kernel, in and out swapped) by
  F(4x4, 3x3); the kernel's is the 36 products' transposes, G^T (V^T dM) G."""
  x, kernel = residuals
  dx = _winograd_conv(
    g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), tuple((2 - lo, 2 - hi) for lo, hi in pads)
  )
  _, _, th, tw = _winograd_sizes(x, pads)
  du = lax.dot_general(
    _winograd_input(x, pads), _winograd_output_grad(g, th, tw), (((1,), (1,)), ((0,), (0,)))
  )  # (36, in, out)
  dk = jnp.einsum('ik,jl,ijco->klco', _G, _G, du.reshape(6, 6, *du.shape[1:]))
  return dx, dk


_winograd_conv.defvjp(_winograd_fwd, _winograd_bwd)


def transposed_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, pads: Pads) -> jnp.ndarray:
  """`lax.conv_transpose(x, kernel, (s, s), pads, transpose_kernel=True)`, NHWC.

  Not one convolution over x dilated with zeros (XLA:CPU runs that form's gradients 5 to 15
  times slower at StarGAN's sizes, docs/benchmarks.md) but the same sums (equal to float
  rounding) in one of two forms: on maps of 8 x 8 or fewer positions one matrix product of
  every input position with the whole kernel, overlap-added (`_overlap_add_conv_transpose`);
  on larger maps stride**2 ordinary convolutions on x, one per output phase (sub-pixel), whose
  outputs are interleaved. Falls back to the dilated form when the output size is not a
  multiple of the stride.
  """
  sizes = [
    (n - 1) * stride + 1 + lo + hi - k + 1
    for n, (lo, hi), k in zip(x.shape[1:3], pads, kernel.shape[:2])
  ]
  if stride == 1 or any(n % stride for n in sizes):
    return lax.conv_transpose(
      x, kernel, (stride, stride), pads, dimension_numbers=_NHWC, transpose_kernel=True
    )
  if (
    x.shape[1] * x.shape[2] <= 64
    and kernel.shape[0] == kernel.shape[1]
    and kernel.shape[0] % stride == 0
  ):
    return _overlap_add_conv_transpose(x, kernel, stride, pads, sizes)
  # Over the dilated input the conv kernel is the flipped one, in and out channels swapped;
  # output phase p meets data only at the taps t = t0, t0 + s, ... with t0 = (lo - p) mod s.
  flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
  rows = []
  for py in range(stride):
    cols = []
    for px in range(stride):
      taps, sub_pads = [], []
      for phase, size, total, (lo, _), k in zip(
        (py, px), x.shape[1:3], sizes, pads, kernel.shape[:2]
      ):
        t0 = (lo - phase) % stride
        before = (lo - phase - t0) // stride  # zero rows of x read before its first row
        length = len(range(t0, k, stride))
        taps.append(t0)
        sub_pads.append((before, total // stride - size - before + length - 1))
      sub = flipped[taps[0] :: stride, taps[1] :: stride]
      cols.append(conv2d(x, sub, 1, tuple(sub_pads)))
    rows.append(jnp.stack(cols, axis=3))  # (B, n_h, n_w, phase_x, C)
  out = jnp.stack(rows, axis=2)  # (B, n_h, phase_y, n_w, phase_x, C)
  return out.reshape(out.shape[0], sizes[0], sizes[1], out.shape[-1])


def _overlap_add_conv_transpose(x, kernel, stride: int, pads, sizes):
  """`transposed_conv` as x @ kernel, (B*H*W, in) @ (in, k*k*out), whose k*k blocks are added
  into the output at their offsets. Its gradients are matrix products too, and the kernel's
  comes out in the kernel's layout (no transposes to fuse into the optimiser's reads). k must
  be a multiple of the stride."""
  b, h, w, _ = x.shape
  k, out = kernel.shape[0], kernel.shape[2]
  q = k // stride  # kernel rows per output phase
  cols = lax.dot_general(
    x.reshape(b * h * w, -1), kernel.reshape(k * k * out, -1), (((1,), (1,)), ((), ()))
  )
  cols = cols.reshape(b, h, w, q, stride, q, stride, out)  # tap (ky, kx) = (qy s + ry, qx s + rx)
  canvas = 0.0
  for qy in range(q):
    for qx in range(q):
      block = cols[:, :, :, qy, :, qx].transpose(0, 1, 3, 2, 4, 5)  # (B, H, ry, W, rx, out)
      canvas = canvas + jnp.pad(
        block, ((0, 0), (qy, q - 1 - qy), (0, 0), (qx, q - 1 - qx), (0, 0), (0, 0))
      )
  canvas = canvas.reshape(b, (h + q - 1) * stride, (w + q - 1) * stride, out)
  # Output row r is canvas row r + k - 1 - before; rows past the canvas no tap reaches: 0.
  starts = [k - 1 - lo for lo, _ in pads]
  canvas = jnp.pad(
    canvas,
    (
      (0, 0),
      *[(0, max(0, st + n - c)) for st, n, c in zip(starts, sizes, canvas.shape[1:3])],
      (0, 0),
    ),
  )
  return canvas[:, starts[0] : starts[0] + sizes[0], starts[1] : starts[1] + sizes[1]]
