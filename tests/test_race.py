"""The side-by-side harness: the official model is read from the user's clone, with a clear error
without one; its steps run and are timed, and the table reports the time ratios."""

import textwrap

import pytest

from jaxpr_gan.tools import race


def test_missing_clone_names_what_to_pass(tmp_path):
  with pytest.raises(FileNotFoundError, match='yunjey/stargan'):
    race.load_official(str(tmp_path))


def test_official_steps_run_a_stand_in_model(tmp_path):
  # A stand-in for the official model.py with the same constructor and outputs, tiny.
  (tmp_path / 'model.py').write_text(
    textwrap.dedent("""
      import torch, torch.nn as nn
      class Generator(nn.Module):
          def __init__(self, conv_dim, c_dim, repeat_num):
              super().__init__(); self.conv = nn.Conv2d(3 + c_dim, 3, 3, padding=1)
          def forward(self, x, c):
              c = c[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))
              return torch.tanh(self.conv(torch.cat([x, c], 1)))
      class Discriminator(nn.Module):
          def __init__(self, image_size, conv_dim, c_dim, repeat_num):
              super().__init__(); self.src = nn.Conv2d(3, 1, 3, padding=1)
              self.cls = nn.Conv2d(3, c_dim, image_size)
          def forward(self, x):
              return self.src(x), self.cls(x).flatten(1)
      """)
  )
  fns, info = race.official_step_fns(str(tmp_path), batch=2, size=8, threads=1)
  theirs, mine = race.side_by_side(fns, fns, steps=1, warmup=0)
  assert theirs['d_step_s'] > 0 and mine['g_step_s'] > 0 and info['threads'] == 1


def test_side_by_side_alternates_the_sides_and_times_only_the_timed_steps(monkeypatch):
  clock, calls = [0.0], []

  def step(side, kind, seconds):
    def call():  # the first two calls of each take 100 s longer (a compile, a cold cache)
      clock[0] += seconds + 100.0 * (calls.count(side + kind) < 2)
      calls.append(side + kind)

    return call

  monkeypatch.setattr(race.time, 'perf_counter', lambda: clock[0])
  theirs = {'d': step('T', 'd', 6.0), 'g': step('T', 'g', 12.0)}
  ours = {'d': step('O', 'd', 3.0), 'g': step('O', 'g', 24.0)}
  t, o = race.side_by_side(theirs, ours, steps=2, warmup=2)
  assert calls == ['Td', 'Od', 'Od', 'Td'] * 2 + ['Tg', 'Og', 'Og', 'Tg'] * 2
  assert t == {'d_step_s': 6.0, 'g_step_s': 12.0} and o == {'d_step_s': 3.0, 'g_step_s': 24.0}


def test_row_reports_pytorch_time_over_ours(tmp_path):
  theirs = {'d_step_s': 6.0, 'g_step_s': 12.0, 'torch': '2.x', 'threads': 2}
  ours = {'d_step_s': 3.0, 'g_step_s': 24.0}
  row = race.row(theirs, ours)
  # Iteration with n_critic 5: PyTorch 6 + 12 / 5 = 8.4 s, ours 3 + 24 / 5 = 7.8 s.
  assert '| 2.00, 0.50, 1.08 |' in row and '8.40 / 7.80' in row
  path = tmp_path / 'docs' / 'race.md'
  race.write(str(path), race.row(theirs, {'d_step_s': 1.0, 'g_step_s': 1.0}))
  race.write(str(path), row)  # the newest figures replace the last
  text = path.read_text()
  assert text.startswith(race.INTRO) and text.count(race.HEADER) == 1
  assert text.endswith(row) and text.count('\n| 20') == 1
