"""CycleGAN networks of Face2Anime (Lin 2018), layer for layer as the official CycleGAN code.

The paper trains a CycleGAN with the residual-block generator (resnet_9blocks) or the U-Net
generator, InstanceNorm throughout and a small convolutional discriminator. The generators and
the 70x70 PatchGAN follow junyanz/pytorch-CycleGAN-and-pix2pix with norm='instance': InstanceNorm
without affine parameters, so every conv keeps its bias. Also here: the image history pool
(Shrivastava et al. 2017) the official code feeds its discriminators from, in pure JAX.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpr_gan.nn import layers


def _conv_transpose(
  features: int,
  kernel: int,
  stride: int,
  padding: int,
  output_padding: int,
  dtype: layers.Dtype = jnp.float32,
) -> layers.ConvTranspose:
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding, output_padding)`.

  PyTorch pads the dilated input by k-1-p below and k-1-p+output_padding above: the output is
  (H - 1) * s - 2p + k + output_padding. `layers.conv_transpose` has no output_padding.
  Kernel layout (k, k, features, in) is PyTorch's weight (in, features, k, k) transposed.
  """
  low = kernel - 1 - padding
  return layers.ConvTranspose(features, kernel, stride, (low, low + output_padding), dtype=dtype)


def _norm(dtype: layers.Dtype) -> nn.InstanceNorm:
  """The official norm='instance': InstanceNorm2d(affine=False)."""
  return layers.instance_norm(affine=False, dtype=dtype)


class ResnetBlock(nn.Module):
  """x + [reflect1, conv3, IN, ReLU, (Dropout), reflect1, conv3, IN](x), the official block."""

  features: int
  dropout: float = 0.0
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
    d = self.dtype
    h = layers.conv(self.features, 3, 1, 0, dtype=d)(layers.reflect_pad(x, 1))
    h = nn.relu(_norm(d)(h))
    if self.dropout > 0:
      h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    h = layers.conv(self.features, 3, 1, 0, dtype=d)(layers.reflect_pad(h, 1))
    return x + _norm(d)(h)


class ResnetGenerator(nn.Module):
  """The official resnet_9blocks generator (11,378,179 parameters at ngf=64, 9 blocks).

  reflect3 + conv7 + IN + ReLU; `num_down` stride-2 conv3 (channels x2); `num_blocks` ResnetBlocks;
  `num_down` ConvTranspose3 s2 p1 output_padding 1 (exactly 2H, channels /2); reflect3 + conv7
  + tanh. `dropout` > 0 is the official use_dropout (0.5) inside the blocks.
  """

  ngf: int = 64
  num_blocks: int = 9
  num_down: int = 2
  dropout: float = 0.0
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
    factor = 2**self.num_down
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(
        f'ResnetGenerator: image size {x.shape[1:3]} must be a multiple of '
        f'2**num_down = {factor} so that the output has the input size.'
      )
    d = self.dtype
    h = layers.conv(self.ngf, 7, 1, 0, dtype=d)(layers.reflect_pad(x.astype(d), 3))
    h = nn.relu(_norm(d)(h))
    ch = self.ngf
    for _ in range(self.num_down):
      ch *= 2
      h = layers.conv(ch, 3, 2, 1, dtype=d)(h)
      h = nn.relu(_norm(d)(h))
    for _ in range(self.num_blocks):
      h = ResnetBlock(ch, self.dropout, dtype=d)(h, deterministic)
    for _ in range(self.num_down):
      ch //= 2
      h = _conv_transpose(ch, 3, 2, 1, 1, dtype=d)(h)
      h = nn.relu(_norm(d)(h))
    h = layers.conv(3, 7, 1, 0, dtype=d, name='to_rgb')(layers.reflect_pad(h, 3))
    return jnp.tanh(h).astype(jnp.float32)


class UnetGenerator(nn.Module):
  """The official UnetGenerator (unet_128: num_downs=7, unet_256: num_downs=8).

  Nested UnetSkipConnectionBlocks, outermost to innermost with (outer, inner) channels
  (3 in / 3 out, ngf), (ngf, 2ngf), (2ngf, 4ngf), (4ngf, 8ngf), then num_downs - 5 times
  (8ngf, 8ngf) with dropout, and the innermost (8ngf, 8ngf). A block is
    outermost: conv4 s2 down, [sub], ReLU, convT4 s2 (2*inner -> 3), tanh; no skip;
    middle:    LReLU(0.2), conv down, IN, [sub], ReLU, convT (2*inner -> outer), IN, (Dropout);
    innermost: LReLU(0.2), conv down, ReLU, convT (inner -> outer), IN;
  and the non-outermost ones return concat([x, block(x)]). All convs have bias (instance norm).
  The official in-place LeakyReLU turns the skip x into LReLU(x); every concat is read through
  the parent's ReLU and ReLU(LReLU(x)) = ReLU(x), so the plain x here computes the same function.
  The image size must be a multiple of 2**num_downs (innermost map at least 1x1).
  """

  ngf: int = 64
  num_downs: int = 8
  dropout: float = 0.0
  dtype: layers.Dtype = jnp.float32

  def _levels(self) -> list[tuple[int, int, float]]:
    """(outer, inner, dropout) of the blocks below the outermost one, top to bottom."""
    g = self.ngf
    deep = [(8 * g, 8 * g, self.dropout)] * (self.num_downs - 5) + [(8 * g, 8 * g, 0.0)]
    return [(g, 2 * g, 0.0), (2 * g, 4 * g, 0.0), (4 * g, 8 * g, 0.0)] + deep

  @nn.compact
  def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
    if self.num_downs < 5:
      raise ValueError(f'UnetGenerator needs num_downs >= 5, got {self.num_downs}.')
    factor = 2**self.num_downs
    for size in x.shape[1:3]:
      if size % factor:
        raise ValueError(
          f'UnetGenerator: image size {size} with num_downs={self.num_downs} '
          f'gives an innermost map of {size / factor:g} pixels; the size must '
          f'be a multiple of 2**num_downs = {factor}.'
        )
    d = self.dtype
    levels = self._levels()

    def block(h: jnp.ndarray, i: int) -> jnp.ndarray:
      """Level i (0 = just below the outermost) applied to h, skip concat included."""
      outer, inner, rate = levels[i]
      innermost = i == len(levels) - 1
      y = nn.leaky_relu(h, negative_slope=0.2)
      y = layers.conv(inner, 4, 2, 1, dtype=d, name=f'down_{i + 1}')(y)
      if not innermost:
        y = block(_norm(d)(y), i + 1)
      y = layers.conv_transpose(outer, 4, 2, 1, dtype=d, name=f'up_{i + 1}')(nn.relu(y))
      y = _norm(d)(y)
      if rate > 0:
        y = nn.Dropout(rate)(y, deterministic=deterministic)
      return jnp.concatenate([h, y], axis=-1)

    h = layers.conv(self.ngf, 4, 2, 1, dtype=d, name='down_0')(x.astype(d))
    h = block(h, 0)
    h = layers.conv_transpose(3, 4, 2, 1, dtype=d, name='up_0')(nn.relu(h))
    return jnp.tanh(h).astype(jnp.float32)


class PatchDiscriminator(nn.Module):
  """The official NLayerDiscriminator (70x70 PatchGAN at num_layers=3; 2,764,737 parameters).

  conv4 s2 + LReLU(0.2); num_layers - 1 x [conv4 s2, IN, LReLU] with ndf * min(2**n, 8)
  channels; conv4 s1, IN, LReLU; conv4 s1 -> 1. All padding 1, all convs with bias.
  Returns the logits map (B, h, w, 1) in float32.
  """

  ndf: int = 64
  num_layers: int = 3
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    h = layers.conv(self.ndf, 4, 2, 1, dtype=d)(x.astype(d))
    h = nn.leaky_relu(h, negative_slope=0.2)
    for n in range(1, self.num_layers + 1):
      stride = 2 if n < self.num_layers else 1
      h = layers.conv(self.ndf * min(2**n, 8), 4, stride, 1, dtype=d)(h)
      h = nn.leaky_relu(_norm(d)(h), negative_slope=0.2)
    return layers.conv(1, 4, 1, 1, dtype=d, name='head')(h).astype(jnp.float32)


class BasicDiscriminator(nn.Module):
  """The paper's "basic 3-layer convolutional neural network" with a 4x4x1 score map at 64 px.

  The paper gives only the depth and the output size; our reading: conv4 s2 p1 (ndf) + LReLU(0.2)
  -> 32; conv4 s2 p1 (2ndf) + IN + LReLU(0.2) -> 16; conv4 stride 4 pad 0 -> 1 channel, 4x4.
  Normalisation and activations as in the PatchGAN. Returns logits (B, h, w, 1) in float32.
  """

  ndf: int = 64
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    h = layers.conv(self.ndf, 4, 2, 1, dtype=d)(x.astype(d))
    h = nn.leaky_relu(h, negative_slope=0.2)
    h = layers.conv(2 * self.ndf, 4, 2, 1, dtype=d)(h)
    h = nn.leaky_relu(_norm(d)(h), negative_slope=0.2)
    return layers.conv(1, 4, 4, 0, dtype=d, name='head')(h).astype(jnp.float32)


# config.generator.architecture / config.discriminator.architecture -> the network.
GENERATORS = {'resnet': ResnetGenerator, 'unet': UnetGenerator}
DISCRIMINATORS = {'basic': BasicDiscriminator, 'patch': PatchDiscriminator}


def init_image_pool(size: int, image_size: int, channels: int = 3) -> dict:
  """An empty history pool of `size` images: {'images': (size, H, W, C) zeros, 'count': 0}."""
  return {
    'images': jnp.zeros((size, image_size, image_size, channels), jnp.float32),
    'count': jnp.zeros((), jnp.int32),
  }


def image_pool_query(pool: dict, images: jnp.ndarray, rng: jax.Array) -> tuple[jnp.ndarray, dict]:
  """The official ImagePool.query, pure: returns (images for the discriminator, new pool).

  Images go in one after another. While the pool holds fewer than P = pool['images'].shape[0]
  images, each is stored at slot `count` and returned itself; afterwards, with probability 1/2 a
  uniformly chosen stored image is returned and the new one takes its slot, else the new image
  is returned. P = 0 returns the images unchanged. Gradients are stopped (the official `.data`).
  """
  size = pool['images'].shape[0]
  if size == 0:
    return images, pool
  images = jax.lax.stop_gradient(images)

  def step(carry, inputs):
    stored, count = carry
    image, key = inputs
    swap_key, slot_key = jax.random.split(key)
    filling = count < size
    swap = jax.random.uniform(swap_key) > 0.5
    slot = jnp.where(filling, count, jax.random.randint(slot_key, (), 0, size))
    old = stored[slot]
    out = jnp.where(~filling & swap, old, image)
    stored = stored.at[slot].set(jnp.where(filling | swap, image, old))
    return (stored, count + filling.astype(count.dtype)), out

  keys = jax.random.split(rng, images.shape[0])
  (stored, count), out = jax.lax.scan(
    step, (pool['images'], pool['count']), (images.astype(pool['images'].dtype), keys)
  )
  return out.astype(images.dtype), {'images': stored, 'count': count}


def official_init(params, rng: jax.Array, gain: float = 0.02):
  """The CycleGAN code's initialisation (init_type 'normal'): every kernel drawn from
  N(0, gain), every bias 0 (its InstanceNorms have no parameters)."""
  leaves, tree = jax.tree.flatten_with_path(params)
  keys = jax.random.split(rng, len(leaves))
  new = [
    gain * jax.random.normal(k, v.shape, v.dtype) if path[-1].key == 'kernel' else jnp.zeros_like(v)
    for k, (path, v) in zip(keys, leaves)
  ]
  return jax.tree.unflatten(jax.tree.structure(params), new)
