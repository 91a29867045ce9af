"""Which code runs a convolution: XLA's own, or the CPU fast path of `cpu_conv`.

`config.conv_impl` chooses:
  'auto'      the CPU fast path when the program is lowered for the CPU, XLA's convolutions for
              GPUs and TPUs (a program lowered for several platforms carries both and picks
              per platform, through `lax.platform_dependent`);
  'xla'       XLA's convolutions everywhere (`lax.conv_general_dilated`, `lax.conv_transpose`);
  'cpu_fast'  the CPU fast path (CPU only).
The choice is made while a function is traced: `implementation(...)` around the tracing, or
`traced_with(fn, ...)`. Without either, 'auto' for the default backend. Both paths compute the
same sums with the same parameters, so checkpoints move freely between them (tests/test_conv.py).
"""

from collections.abc import Callable, Sequence
import contextlib
import contextvars
import functools

import jax
from jax import lax

from jaxpr_gan.nn import cpu_conv

IMPLS = ('auto', 'xla', 'cpu_fast')
SCOPE = 'cpu_fast'  # the name scope of the fast path's operations in a lowered program
_NHWC = ('NHWC', 'HWIO', 'NHWC')
_CHOICE = contextvars.ContextVar('conv_impl', default=None)  # 'xla' | 'cpu_fast' | 'per_platform'


def resolve(impl: str, platforms: Sequence[str]) -> str:
  """`impl` for a program lowered for `platforms` -> 'xla', 'cpu_fast' or 'per_platform'."""
  if impl not in IMPLS:
    raise ValueError(f'unknown conv_impl {impl!r}; use one of {IMPLS}')
  if impl != 'auto':
    return impl
  platforms = tuple(platforms)
  if all(p == 'cpu' for p in platforms):
    return 'cpu_fast'
  return 'xla' if 'cpu' not in platforms else 'per_platform'


@contextlib.contextmanager
def implementation(impl: str = 'auto', platforms: Sequence[str] | None = None):
  """Convolutions traced inside use `impl` for a program lowered for `platforms` (default: the
  default backend)."""
  token = _CHOICE.set(resolve(impl, platforms or (jax.default_backend(),)))
  try:
    yield
  finally:
    _CHOICE.reset(token)


def traced_with(
  fn: Callable, impl: str = 'auto', platforms: Sequence[str] | None = None
) -> Callable:
  """`fn` whose convolutions use `impl` whenever it is traced (wrap before `jax.jit`)."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with implementation(impl, platforms):
      return fn(*args, **kwargs)

  return wrapped


def _choice() -> str:
  choice = _CHOICE.get()
  return choice if choice is not None else resolve('auto', (jax.default_backend(),))


def pads(padding) -> cpu_conv.Pads:
  """An int (PyTorch's symmetric padding), a (before, after) pair for both axes, or
  ((top, bottom), (left, right)) -> the last form."""
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  if isinstance(padding[0], int):
    return ((int(padding[0]), int(padding[1])),) * 2
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _xla_conv2d(x, kernel, stride: int, p):
  return lax.conv_general_dilated(x, kernel, (stride, stride), p, dimension_numbers=_NHWC)


def _xla_transposed_conv(x, kernel, stride: int, p):
  return lax.conv_transpose(
    x, kernel, (stride, stride), p, dimension_numbers=_NHWC, transpose_kernel=True
  )


def _dispatch(xla_fn, fast_fn, x, kernel, stride: int, p):
  def fast(x, kernel):
    with jax.named_scope(SCOPE):
      return fast_fn(x, kernel, stride, p)

  choice = _choice()
  if choice == 'cpu_fast':
    return fast(x, kernel)
  if choice == 'xla':
    return xla_fn(x, kernel, stride, p)
  return lax.platform_dependent(
    x, kernel, cpu=fast, default=functools.partial(xla_fn, stride=stride, p=p)
  )


def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding) -> jax.Array:
  """A convolution, NHWC with an HWIO kernel; padding as `pads` takes it."""
  return _dispatch(_xla_conv2d, cpu_conv.conv2d, x, kernel, stride, pads(padding))


def transposed_conv(x: jax.Array, kernel: jax.Array, stride: int, padding) -> jax.Array:
  """`lax.conv_transpose(x, kernel, (s, s), padding, transpose_kernel=True)`, NHWC; padding of
  the dilated input as `pads` takes it."""
  return _dispatch(_xla_transposed_conv, cpu_conv.transposed_conv, x, kernel, stride, pads(padding))
