"""Blocks by name: what `generator.block` names, built with `generator.block_args`.

A block is a Flax module called as `Block(features, dtype=..., **block_args)(x)` that keeps the
shape of x. A new one is registered once, where it is written:

  @blocks.register('my_block')
  class MyBlock(nn.Module):
    features: int
    ratio: int = 4
    dtype: Any = jnp.float32
    ...

and is then chosen with `--config.generator.block=my_block`, its fields set through
`config.generator.block_args` (docs/extending.md). A block outside the modules imported here is
named by its dotted path instead ('my_package.my_module.MyBlock'), so a run restored from its
checkpoint finds it too. A block that makes an attention mask declares
it with `attention.sow_mask`; one whose input must be at least n x n says so with a static
`min_input_size(**block_args) -> n`, which the config checks read.
"""

from collections.abc import Callable

from jaxpr_gan import run_config
from jaxpr_gan.nn import attention
from jaxpr_gan.nn import layers

_BLOCKS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
  """Class decorator: makes the block available as `generator.block = name`."""

  def add(cls: type) -> type:
    if name in _BLOCKS and _BLOCKS[name] is not cls:
      raise ValueError(f'a block named {name!r} is registered already ({_BLOCKS[name]})')
    _BLOCKS[name] = cls
    return cls

  return add


def get(name: str) -> type:
  """A registered block, or the class a dotted path names."""
  if name in _BLOCKS:
    return _BLOCKS[name]
  if '.' in name:
    return run_config.named_object(name, 'config.generator.block')
  raise ValueError(
    f'unknown block {name!r}: use one of {names()}, register it with '
    'jaxpr_gan.nn.blocks.register, or name it by its dotted path'
  )


def names() -> list[str]:
  return sorted(_BLOCKS)


def min_input_size(name: str, block_args) -> int:
  """The smallest feature map the block accepts (1 unless it declares more)."""
  size = getattr(get(name), 'min_input_size', None)
  return size(**dict(block_args)) if size else 1


register('residual')(layers.ResidualBlock)  # StarGAN
register('sarb')(attention.SARB)  # SARGAN
register('mmarm')(attention.MMARM)  # MMA-GAN
