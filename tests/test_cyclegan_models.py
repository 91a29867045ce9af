"""Face2Anime CycleGAN networks: official parameter counts, shapes, PyTorch conv-transpose
semantics, dropout, and the image history pool."""

# pylint: disable=protected-access
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.models import count_params
from jaxpr_gan.models import cyclegan
from jaxpr_gan.nn import layers


def _image(size, batch=2):
  return jnp.zeros((batch, size, size, 3), jnp.float32)


# ---------------------------------------------------------------- parameter counts (no arrays)


def test_resnet_generator_official_count():
  # resnet_9blocks, ngf=64: conv7 3->64 9,472; conv3 64->128 73,856; conv3 128->256 295,168;
  # 9 blocks x 2 x (256*256*9 + 256) = 10,621,440; convT 256->128 295,040; convT 128->64
  # 73,792; conv7 64->3 9,411.
  assert count_params(cyclegan.ResnetGenerator(), _image(256, 1)) == 11_378_179


def test_unet_generator_official_counts():
  # Every conv and transposed conv is 4x4 with bias; the IN layers have no parameters.
  # Outermost: down 3->64 (3*64*16+64) 3,136; up 128->3 (128*3*16+3) 6,147.
  # (64, 128):  down 64*128*16+128 = 131,200;  up 256->64 256*64*16+64 = 262,208.
  # (128, 256): down 524,544;                  up 512->128 1,048,704.
  # (256, 512): down 2,097,664;                up 1024->256 4,194,560.
  # (512, 512) middle, each: down 4,194,816;   up 1024->512 8,389,120  -> 12,583,936.
  # (512, 512) innermost: down 4,194,816;      up 512->512 4,194,816   ->  8,389,632.
  # Fixed part 16,657,795 plus (num_downs - 5) middle blocks:
  # unet_128 (7): 16,657,795 + 2 * 12,583,936 = 41,825,667.
  # unet_256 (8): 16,657,795 + 3 * 12,583,936 = 54,409,603.
  assert count_params(cyclegan.UnetGenerator(num_downs=7), _image(128, 1)) == 41_825_667
  assert count_params(cyclegan.UnetGenerator(num_downs=8), _image(256, 1)) == 54_409_603


def test_discriminator_counts():
  # PatchGAN n_layers=3: 3,136 + 131,200 + 524,544 + 2,097,664 (s1) + 8,193 (head).
  assert count_params(cyclegan.PatchDiscriminator(), _image(256, 1)) == 2_764_737
  # Basic: 3,136 + 131,200 + (128*1*16 + 1) 2,049.
  assert count_params(cyclegan.BasicDiscriminator(), _image(64, 1)) == 136_385


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
  'module, expected',
  [
    (cyclegan.ResnetGenerator(), (2, 64, 64, 3)),
    (cyclegan.UnetGenerator(num_downs=6), (2, 64, 64, 3)),
    (cyclegan.PatchDiscriminator(), (2, 6, 6, 1)),
    (cyclegan.BasicDiscriminator(), (2, 4, 4, 1)),
  ],
)
def test_shapes_at_64(module, expected):
  x = _image(64)
  variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
  out = jax.eval_shape(module.apply, variables, x)
  assert out.shape == expected and out.dtype == jnp.float32


@pytest.mark.parametrize(
  'module, size, expected',
  [
    (cyclegan.ResnetGenerator(ngf=4, num_blocks=2), 16, (2, 16, 16, 3)),
    (cyclegan.UnetGenerator(ngf=4, num_downs=5), 32, (2, 32, 32, 3)),
    (cyclegan.PatchDiscriminator(ndf=4), 32, (2, 2, 2, 1)),
    (cyclegan.BasicDiscriminator(ndf=4), 16, (2, 1, 1, 1)),
  ],
)
def test_apply_small(module, size, expected):
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, size, size, 3), minval=-1, maxval=1)
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), x)
  out = jax.jit(module.apply)(variables, x)
  assert out.shape == expected and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  if expected[-1] == 3:
    assert np.all(np.abs(out) <= 1)


def test_unet_too_small_raises():
  with pytest.raises(ValueError, match=r'16.*num_downs=5'):
    jax.eval_shape(
      cyclegan.UnetGenerator(ngf=4, num_downs=5).init, jax.random.PRNGKey(0), _image(16)
    )


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize(
  'module, size',
  [
    (cyclegan.ResnetGenerator(ngf=4, num_blocks=2, dropout=0.5), 16),
    (cyclegan.UnetGenerator(ngf=4, num_downs=6, dropout=0.5), 64),
  ],
)
def test_dropout(module, size):
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, size, size, 3), minval=-1, maxval=1)
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), x)
  apply = jax.jit(module.apply, static_argnames='deterministic')
  a = apply(variables, x, deterministic=True)
  b = apply(variables, x, deterministic=True)
  np.testing.assert_array_equal(a, b)
  c = apply(variables, x, deterministic=False, rngs={'dropout': jax.random.PRNGKey(2)})
  d = apply(variables, x, deterministic=False, rngs={'dropout': jax.random.PRNGKey(3)})
  assert not np.allclose(c, d)
  assert not np.allclose(a, c)


# ---------------------------------------------------------------- PyTorch layer semantics


def _torch_conv_transpose(x, w, b, stride, padding, output_padding):
  """ConvTranspose2d by scatter: out[i*s - p + k] += x[i] * w[k], cropped to
  (H - 1) * s - 2p + k + output_padding. x (B, H, W, Cin), w (Cin, Cout, k, k) as in PyTorch."""
  batch, height, width, _ = x.shape
  k = w.shape[-1]
  full = np.zeros(
    (
      batch,
      (height - 1) * stride + k + output_padding,
      (width - 1) * stride + k + output_padding,
      w.shape[1],
    )
  )
  for i in range(height):
    for j in range(width):
      full[:, i * stride : i * stride + k, j * stride : j * stride + k, :] += np.einsum(
        'bc,cokl->bklo', x[:, i, j], w
      )
  out_h = (height - 1) * stride - 2 * padding + k + output_padding
  out_w = (width - 1) * stride - 2 * padding + k + output_padding
  return full[:, padding : padding + out_h, padding : padding + out_w] + b


@pytest.mark.parametrize('kernel, output_padding', [(3, 1), (4, 0)])
def test_conv_transpose_matches_pytorch(kernel, output_padding):
  # (3, 1): ResnetGenerator's upsampling; (4, 0): the U-Net's (layers.conv_transpose).
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
  w = rng.standard_normal((3, 2, kernel, kernel)).astype(np.float32)  # (Cin, Cout, k, k)
  b = rng.standard_normal(2).astype(np.float32)
  if output_padding:
    layer = cyclegan._conv_transpose(2, kernel, 2, 1, output_padding)
  else:
    layer = cyclegan.layers.conv_transpose(2, kernel, 2, 1)
  params = layer.init(jax.random.PRNGKey(0), jnp.asarray(x))['params']
  assert params['kernel'].shape == (kernel, kernel, 2, 3)
  params = {'kernel': jnp.asarray(w.transpose(2, 3, 1, 0)), 'bias': jnp.asarray(b)}
  out = np.asarray(layer.apply({'params': params}, jnp.asarray(x)))
  assert out.shape == (2, 10, 8, 2)  # exactly 2H x 2W
  np.testing.assert_allclose(
    out, _torch_conv_transpose(x, w, b, 2, 1, output_padding), rtol=1e-5, atol=1e-5
  )


def test_reflect_pad_is_pytorch_reflection():
  x = jnp.arange(4.0).reshape(1, 1, 4, 1)
  out = layers.reflect_pad(x, 2)
  np.testing.assert_array_equal(out[0, 2, :, 0], [2, 1, 0, 1, 2, 3, 2, 1])


# ---------------------------------------------------------------- image pool


def _numbered(first, n):
  """n tiny images whose pixels all equal their number first, first + 1, ..."""
  ids = jnp.arange(first, first + n, dtype=jnp.float32)
  return jnp.broadcast_to(ids[:, None, None, None], (n, 2, 2, 1))


def _ids(images):
  images = np.asarray(images)
  assert np.all(images == images[:, :1, :1, :1])  # each image is one stored image, not a mix
  return images[:, 0, 0, 0].astype(int).tolist()


def test_pool_fills_in_order():
  query = jax.jit(cyclegan.image_pool_query)
  pool = cyclegan.init_image_pool(3, 2, channels=1)
  out, pool = query(pool, _numbered(0, 2), jax.random.PRNGKey(0))
  assert _ids(out) == [0, 1] and int(pool['count']) == 2
  assert _ids(pool['images'][:2]) == [0, 1]
  out, pool = query(pool, _numbered(2, 2), jax.random.PRNGKey(1))
  assert _ids(out)[0] == 2 and _ids(out)[1] in (0, 1, 2, 3)
  assert int(pool['count']) == 3 and pool['images'].shape == (3, 2, 2, 1)
  # Image 2 was stored and returned; image 3 either came back (pool 0, 1, 2) or replaced
  # the stored image returned in its place.
  assert sorted(_ids(pool['images']) + _ids(out)[1:]) == [0, 1, 2, 3]


def test_pool_swaps_half_and_conserves_images():
  query = jax.jit(cyclegan.image_pool_query)
  pool = cyclegan.init_image_pool(3, 2, channels=1)
  _, pool = query(pool, _numbered(0, 3), jax.random.PRNGKey(0))
  returned, seen = [], [0, 1, 2]
  for step in range(20):
    batch = _numbered(3 + 20 * step, 20)
    out, new_pool = query(pool, batch, jax.random.PRNGKey(step + 1))
    out_ids, in_ids = _ids(out), _ids(batch)
    for i, (o, q) in enumerate(zip(out_ids, in_ids)):
      # The query image itself or one stored earlier (the pool or this batch's earlier images).
      assert o == q or o in seen or o in in_ids[:i]
      returned.append(o != q)
    # Every image is either returned or kept: the pool stays P images.
    assert sorted(_ids(new_pool['images']) + out_ids) == sorted(_ids(pool['images']) + in_ids)
    assert int(new_pool['count']) == 3
    seen += in_ids
    pool = new_pool
  assert len(returned) == 400 and 0.3 < np.mean(returned) < 0.7


def test_pool_deterministic():
  pool = cyclegan.init_image_pool(2, 2, channels=1)
  images = _numbered(0, 8)
  a = cyclegan.image_pool_query(pool, images, jax.random.PRNGKey(5))
  b = jax.jit(cyclegan.image_pool_query)(pool, images, jax.random.PRNGKey(5))
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_pool_size_zero_returns_inputs():
  pool = cyclegan.init_image_pool(0, 2, channels=1)
  images = _numbered(0, 4)
  out, new_pool = jax.jit(cyclegan.image_pool_query)(pool, images, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, images)
  assert new_pool['images'].shape == (0, 2, 2, 1)


def test_official_init_draws_kernels_from_n_0_002_and_zero_biases():
  g = cyclegan.ResnetGenerator(ngf=8, num_blocks=2)
  params = jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))['params']
  params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), params)
  drawn = cyclegan.official_init(params, jax.random.PRNGKey(1))
  kernels = [v for p, v in jax.tree.flatten_with_path(drawn)[0] if p[-1].key == 'kernel']
  biases = [v for p, v in jax.tree.flatten_with_path(drawn)[0] if p[-1].key == 'bias']
  assert kernels and biases and all(not b.any() for b in biases)
  flat = np.concatenate([np.ravel(k) for k in kernels])
  assert abs(flat.std() - 0.02) < 0.001 and abs(flat.mean()) < 0.001
