"""The command lines as a user runs them: a mistake is one line naming the key or file and the
fix, exit status 2, no traceback, nothing created; an unexpected error keeps its traceback; a
run's first lines say what runs; no TensorFlow or missing-TPU noise; any working directory."""

import os
import subprocess
import sys
import textwrap

from PIL import Image
import pytest

from tests import conftest

ROOT = conftest.ROOT
CONFIG = os.path.join(ROOT, 'configs', 'stargan.py')


def _run(args: list[str], cwd: str, env_extra: dict | None = None, timeout: int = 300):
  env = dict(conftest.subprocess_env(1), **(env_extra or {}))
  return subprocess.run(
    [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
  )


def _user_error(result, *expected: str) -> str:
  """Exit status 2 and one `error:` line on stderr naming each of `expected`."""
  assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
  assert 'Traceback' not in result.stderr, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(errors) == 1, result.stderr[-2000:]
  for text in expected:
    assert text in errors[0], (text, errors[0])
  return errors[0]


@pytest.mark.parametrize(
  'args,expected',
  [
    (
      ['--config.loss.adversarail=hinge'],  # a nested key mistyped on the command line
      ['--config.loss.adversarail=hinge', 'did you mean config.loss.adversarial?'],
    ),
    (['--config.generator.blok=sarb'], ['config.generator has no key', 'config.generator.block']),
    (['--config.batch_size=abc'], ['--config.batch_size=abc', 'int']),  # a wrong type
    (
      ['--config.loss.adversarial=hinje'],  # a value the config checks refuse
      ["config.loss.adversarial = 'hinje' is unknown (did you mean 'hinge'?)"],
    ),
    (['--config.data.image_size=24'], ['config.data.image_size = 24', 'repeat_num']),
  ],
)
def test_train_with_a_wrong_override_says_so_in_one_line_and_creates_nothing(
  args, expected, tmp_path
):
  result = _run(
    [os.path.join(ROOT, 'train.py'), f'--config={CONFIG}:tiny', '--workdir=run', *args],
    str(tmp_path),
  )
  _user_error(result, *expected)
  assert not (tmp_path / 'run').exists()


def test_a_wrong_variant_a_missing_config_and_a_missing_flag(tmp_path):
  train = os.path.join(ROOT, 'train.py')
  _user_error(
    _run([train, f'--config={CONFIG}:quik', '--workdir=run'], str(tmp_path)),
    "unknown variant 'quik'",
    "'quick'",
  )
  _user_error(
    _run([train, '--config=configs/nope.py', '--workdir=run'], str(tmp_path)),
    'configs/nope.py',
    'No such file',
  )
  _user_error(_run([train, f'--config={CONFIG}:tiny'], str(tmp_path)), '--workdir')
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize(
  'tool',
  [
    ['eval.py'],
    ['-m', 'jaxpr_gan.tools.export', '--out=g.jaxgen'],
    ['-m', 'jaxpr_gan.tools.edit', '--input=face.png', '--model'],
  ],
)
def test_a_missing_run_names_the_runs_beside_it(tool, tmp_path):
  (tmp_path / 'runs' / 'mine' / 'checkpoints').mkdir(parents=True)
  Image.new('RGB', (8, 8)).save(tmp_path / 'face.png')
  args = [os.path.join(ROOT, tool[0])] + tool[1:] if tool[0].endswith('.py') else tool
  args = args + ['runs/mien'] if args[-1] == '--model' else args + ['--workdir=runs/mien']
  _user_error(_run(args, str(tmp_path)), "no run directory 'runs/mien'", 'runs beside it: mine')
  assert not (tmp_path / 'g.jaxgen').exists()


def test_convert_without_its_file_and_judge_with_a_wrong_override(tmp_path):
  _user_error(
    _run(
      [
        '-m',
        'jaxpr_gan.tools.convert',
        f'--config={CONFIG}',
        '--workdir=imported',
        '--generator=200000-G.ckpt',
        '--class_names=a,b',
      ],
      str(tmp_path),
    ),
    'checkpoint file not found: 200000-G.ckpt',
  )
  assert not (tmp_path / 'imported').exists()
  _user_error(
    _run(
      [
        '-m',
        'jaxpr_gan.tools.judge',
        f'--config={CONFIG}:tiny',
        '--workdir=j',
        '--config.data.image_sise=8',
      ],
      str(tmp_path),
    ),
    'did you mean config.data.image_size?',
  )


def test_an_unexpected_error_keeps_its_traceback(tmp_path):
  (tmp_path / 'boom.py').write_text(
    textwrap.dedent("""
      from configs import stargan
      from jaxpr_gan import registry
      from jaxpr_gan.objectives import conditional

      def _build(config, num_classes):
        raise RuntimeError('a bug in the build')

      MODEL = registry.Model('boom', conditional.ConditionalGAN, _build)

      def get_config():
        return stargan.get_config('tiny', model='boom.MODEL')
  """)
  )
  result = _run(
    [os.path.join(ROOT, 'train.py'), f'--config={tmp_path / "boom.py"}', '--workdir=run'],
    str(tmp_path),
    {'PYTHONPATH': f'{tmp_path}:{ROOT}'},
  )
  assert result.returncode == 1 and 'Traceback' in result.stderr
  assert 'RuntimeError: a bug in the build' in result.stderr


def test_a_run_from_another_directory_says_what_runs_without_noise(tmp_path):
  result = _run(
    [
      os.path.join(ROOT, 'train.py'),
      f'--config={CONFIG}:tiny',
      '--workdir=run',
      '--config.num_train_steps=2',
      '--compilation_cache_dir=xla',
    ],
    str(tmp_path),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / 'run' / 'checkpoints').is_dir()
  assert any('d_step' in f for f in os.listdir(tmp_path / 'xla'))  # the persistent cache
  log = result.stderr
  for noise in ('oneDNN', 'TensorFlow', 'cpu_feature_guard', 'Unable to initialize backend'):
    assert noise not in log, noise
  first = [l for l in log.splitlines() if l.startswith('I')][:6]
  said = '\n'.join(first)
  assert f'Config {CONFIG}:tiny' in said and f'workdir {tmp_path / "run"}' in said
  assert "Devices: 1 x cpu (cpu) in 1 process(es); mesh {'data': 1}" in said
  assert "Data: source 'synthetic', 1000 training and 250 test items" in said
  assert 'Model stargan: G 12,028 parameters, D 11,452' in said
  export = _run(['-m', 'jaxpr_gan.tools.export', '--workdir=run', '--out=g.jaxgen'], str(tmp_path))
  assert export.returncode == 0 and (tmp_path / 'g.jaxgen').is_file(), export.stderr[-2000:]


@pytest.mark.parametrize(
  'tool',
  [
    ['eval.py', '--workdir=run'],
    ['-m', 'jaxpr_gan.tools.judge', '--workdir=judge'],
    ['-m', 'jaxpr_gan.tools.convert', '--workdir=imported', '--generator=G.ckpt'],
  ],
)
@pytest.mark.parametrize(
  'variant,override,expected',
  [
    (':tiny', '--config.data.image_sise=8', 'did you mean config.data.image_size?'),
    (':tiny', '--config.n_critic=two', "invalid literal for int() with base 10: 'two'"),
    (':quik', '', "unknown variant 'quik'"),
  ],
)
def test_every_tool_with_a_config_says_its_mistakes_in_one_line(
  tool, variant, override, expected, tmp_path
):
  args = [os.path.join(ROOT, tool[0])] + tool[1:] if tool[0].endswith('.py') else list(tool)
  args += [f'--config={CONFIG}{variant}'] + ([override] if override else [])
  _user_error(_run(args, str(tmp_path)), expected)
  assert not any(tmp_path.iterdir())  # nothing written
