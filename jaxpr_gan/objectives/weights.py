"""Loss weights as values of the compiled steps, so that a sweep over them compiles once.

An objective's float fields named `lambda_*` are its loss weights. `split` takes them out as
values (weakly typed float32 scalars: inside the step they promote as the Python floats they
replace) and leaves a structural objective whose weights are `Weight`s that know only their
sign: two objectives that differ only in the values of nonzero weights are then equal, and hash
equal, so jit reuses one program for both. `bind`, inside the trace, puts the values back.

A weight still decides the program's structure by its sign: `if self.lambda_rec:` leaves a term
out at 0, and `self.lambda_identity > 0` is a comparison with 0. Anything else it is used in is
arithmetic on its value.
"""

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Weight:
  """A loss weight in a compiled step: its static sign, its (traced) value for arithmetic."""

  sign: int  # -1, 0 or 1: what `bool` and comparisons with 0 read
  value: Any = dataclasses.field(default=None, compare=False, hash=False)

  def __bool__(self) -> bool:
    return self.sign != 0

  def _zero(self, other) -> int:
    if not (isinstance(other, numbers.Real) and other == 0):
      raise TypeError(f'a loss weight compares only with 0 in a compiled step, not {other!r}')
    return 0

  def __gt__(self, other):
    return self.sign > self._zero(other)

  def __ge__(self, other):
    return self.sign >= self._zero(other)

  def __lt__(self, other):
    return self.sign < self._zero(other)

  def __le__(self, other):
    return self.sign <= self._zero(other)

  def __mul__(self, other):
    return self.value * (other.value if isinstance(other, Weight) else other)

  __rmul__ = __mul__

  def __neg__(self):
    return -self.value

  def __truediv__(self, other):
    return self.value / other

  def __add__(self, other):
    return self.value + other

  __radd__ = __add__


def names(objective) -> tuple[str, ...]:
  """The objective's loss-weight fields: its float fields named lambda_*."""
  return tuple(
    f.name
    for f in dataclasses.fields(objective)
    if f.name.startswith('lambda_') and isinstance(getattr(objective, f.name), (float, int, Weight))
    and not isinstance(getattr(objective, f.name), bool)
  )  # fmt: skip


def _sign(v: float) -> int:
  return (v > 0) - (v < 0)


def split(objective) -> tuple[Any, dict[str, jax.Array]]:
  """-> (the objective with each weight a `Weight` of its sign, {name: value})."""
  values = {k: jnp.asarray(float(getattr(objective, k))) for k in names(objective)}
  signs = {k: Weight(_sign(float(getattr(objective, k)))) for k in values}
  return dataclasses.replace(objective, **signs), values


def bind(structural, values: dict[str, jax.Array]):
  """The structural objective with its weights' values (in a trace: tracers) put back."""
  return dataclasses.replace(
    structural, **{k: Weight(getattr(structural, k).sign, v) for k, v in values.items()}
  )
