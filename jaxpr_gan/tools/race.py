"""Side by side with the official PyTorch StarGAN: python -m jaxpr_gan.tools.race --official DIR

DIR is your clone of yunjey/stargan (this repository never ships or downloads it). Its
`model.py` builds the official Generator and Discriminator at the paper's configuration
(128 px, 64 filters, 6 residual blocks, 5 domains, batch 16), and one D step and one G step run
as the official `Solver.train` runs them: D on real images, on `G(x)` detached and on the
interpolates with the WGAN-GP double backward, one backward and an Adam step; G with the
adversarial, classification and cycle terms through D, one backward and an Adam step. Ours is
`jaxpr_gan.tools.bench` on `configs/stargan.py` (the same sizes, same loss terms, same optimiser).
Both run in this process on this machine's CPU (PyTorch with as many threads as cores) or, for
ours, on the accelerator JAX finds, their steps alternating so that both see the same load.
`--config.conv_impl=xla` races XLA's own convolutions instead of the CPU fast path.
Prints the medians and the ratios and writes them to docs/race.md (the figures of the newest run
replace the last ones).
"""

import importlib.util
import os
import statistics
import time

import numpy as np

from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import tools
from jaxpr_gan.tools import bench


def load_official(directory: str):
  """The official `model` module from a clone of yunjey/stargan (a clear error without one)."""
  path = os.path.join(directory, 'model.py')
  if not os.path.isfile(path):
    raise errors.NotFound(
      f'{path} not found: --official must be a clone of '
      'https://github.com/yunjey/stargan (its model.py is all that is read).'
    )
  spec = importlib.util.spec_from_file_location('official_stargan_model', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def official_step_fns(
  directory: str, batch: int = 16, size: int = 128, domains: int = 5, threads: int = 0
):
  """The official D step and G step (PyTorch, CPU) as calls, and {'threads', 'torch'}."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(threads or os.cpu_count())
  torch.manual_seed(0)
  model = load_official(directory)
  g = model.Generator(64, domains, 6)
  d = model.Discriminator(size, 64, domains, 6)
  g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.999))
  rng = np.random.default_rng(0)
  x = torch.tensor(rng.uniform(-1, 1, (batch, 3, size, size)), dtype=torch.float32)
  label = torch.tensor(rng.integers(0, domains, batch))
  target = label[torch.randperm(batch)]
  c_org, c_trg = F.one_hot(label, domains).float(), F.one_hot(target, domains).float()

  def d_step():
    out_src, out_cls = d(x)
    loss = -out_src.mean() + F.cross_entropy(out_cls, label)
    fake = g(x, c_trg)
    loss = loss + d(fake.detach())[0].mean()
    alpha = torch.rand(batch, 1, 1, 1)
    x_hat = (alpha * x + (1 - alpha) * fake.data).requires_grad_(True)
    out = d(x_hat)[0]
    grad = torch.autograd.grad(
      out, x_hat, torch.ones_like(out), retain_graph=True, create_graph=True, only_inputs=True
    )[0]
    gp = ((grad.view(batch, -1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    loss = loss + 10 * gp
    g_opt.zero_grad()
    d_opt.zero_grad()
    loss.backward()
    d_opt.step()

  def g_step():
    fake = g(x, c_trg)
    out_src, out_cls = d(fake)
    rec = g(fake, c_org)
    loss = -out_src.mean() + F.cross_entropy(out_cls, target) + 10 * (x - rec).abs().mean()
    g_opt.zero_grad()
    d_opt.zero_grad()
    loss.backward()
    g_opt.step()

  return {'d': d_step, 'g': g_step}, {
    'threads': torch.get_num_threads(),
    'torch': torch.__version__,
  }


def our_step_fns(config):
  """Ours at `config` (StarGAN's paper settings: the same configuration), as
  `bench.step_runners`."""
  return bench.step_runners(config, 5)[0]


def side_by_side(theirs: dict, mine: dict, steps: int = 3, warmup: int = 1):
  """Median seconds of each side's D and G steps, ({'d_step_s', 'g_step_s'} each). The two sides
  alternate step by step, and which goes first alternates too, so that both see the same load
  on the machine (on a shared VM it drifts by 20% within minutes)."""
  times = ({}, {})
  for name in ('d', 'g'):
    runs = ([], [])
    for i in range(warmup + steps):
      for side in (0, 1) if i % 2 == 0 else (1, 0):
        start = time.perf_counter()
        (theirs, mine)[side][name]()
        if i >= warmup:
          runs[side].append(time.perf_counter() - start)
    for side in (0, 1):
      times[side][f'{name}_step_s'] = statistics.median(runs[side])
  return times


HEADER = (
  '| date | D step PyTorch / ours (s) | G step PyTorch / ours (s) | iteration, n_critic 5 '
  '(s) | PyTorch time / ours: D, G, iteration | machine |\n|---|---|---|---|---|---|\n'
)


def row(theirs: dict, mine: dict, n_critic: int = 5) -> str:
  """One table row: the step times, and PyTorch's time over ours (above 1: ours faster)."""
  it = {k: f['d_step_s'] + f['g_step_s'] / n_critic for k, f in (('t', theirs), ('o', mine))}
  ratio = lambda key: theirs[key] / mine[key]
  return (
    f'| {time.strftime("%Y-%m-%d")} | {theirs["d_step_s"]:.2f} / {mine["d_step_s"]:.2f} | '
    f'{theirs["g_step_s"]:.2f} / {mine["g_step_s"]:.2f} | {it["t"]:.2f} / {it["o"]:.2f} | '
    f'{ratio("d_step_s"):.2f}, {ratio("g_step_s"):.2f}, {it["t"] / it["o"]:.2f} | '
    f'{bench.machine()}; torch {theirs["torch"]} with {theirs["threads"]} threads; '
    f'GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES") or "unset"} |\n'
  )


INTRO = (
  '# Ours against the official PyTorch StarGAN\n\nCPU figures of `python -m '
  'jaxpr_gan.tools.race --official DIR --steps 5`: 128 px, batch 16, 5 domains, medians of '
  '5 timed steps of each side, the two sides alternating step by step (what each change '
  'gained: benchmarks.md).'
)


def write(path: str, line: str) -> None:
  """Writes the race's table with one row, `line`: the newest figures replace the last."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  files.write_text(path, INTRO + '\n\n' + HEADER + line)


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  their_fns, info = official_step_fns(f.official, threads=f.threads)
  theirs, mine = side_by_side(their_fns, our_step_fns(f.config), f.steps, f.warmup)
  line = row({**theirs, **info}, mine)
  print(HEADER + line, end='')
  if f.out:
    write(f.out, line)
    print(f'written to {f.out}')


if __name__ == '__main__':
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file(
    'config',
    os.path.join(tools.ROOT, 'configs', 'stargan.py'),
    "Our side: StarGAN at the paper's settings (e.g. --config.conv_impl=xla).",
  )
  _flags.DEFINE_string('official', None, 'A clone of https://github.com/yunjey/stargan.')
  _flags.DEFINE_integer('steps', 3, 'Timed steps of each kind (the median is reported).')
  _flags.DEFINE_integer('warmup', 1, 'Untimed steps first.')
  _flags.DEFINE_integer('threads', 0, 'PyTorch threads (0: one per core).')
  _flags.DEFINE_string(
    'out', os.path.join(tools.ROOT, 'docs', 'race.md'), 'Markdown file to write ("" to skip).'
  )
  _flags.mark_flags_as_required(['official'])
  cli.run(main)
