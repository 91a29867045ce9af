"""What every command line shares: a mistake the user can fix is one line and exit status 2.

`run(main)` is `absl.app.run(main)` where a bad flag, an unknown config override (with the key it
is closest to), a wrong value type, a wrong variant, a missing config file, or an
`errors.UserError` raised by the work (a ConfigError, a missing run, ...) prints
`error: <what and the fix>` on stderr and exits with status 2, before anything is written. Any
other error keeps its traceback.
"""

from collections.abc import Callable
import os
import re
import sys
from typing import NoReturn

from absl import app
from absl import flags
import jax

from jaxpr_gan import errors

_CACHE = flags.DEFINE_string(
  'compilation_cache_dir',
  None,
  "JAX's persistent compilation cache: a rerun, a resumed run or a sweep's next point loads "
  'the compiled steps instead of compiling them again. Default: JAX_COMPILATION_CACHE_DIR if '
  "set, else ~/.cache/jaxpr_gan/xla; '' turns it off.",
)
DEFAULT_CACHE = os.path.join('~', '.cache', 'jaxpr_gan', 'xla')


def use_compilation_cache(path: str | None) -> None:
  """Points JAX's persistent compilation cache at `path` (None: JAX's own setting, else
  DEFAULT_CACHE; '': off)."""
  if path is None:
    path = jax.config.jax_compilation_cache_dir or DEFAULT_CACHE
  jax.config.update('jax_compilation_cache_dir', os.path.expanduser(path) if path else None)


def fail(message: str) -> NoReturn:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _override(argv: list[str], missing: str) -> str | None:
  """The `--config.a.b=v` argument whose path names the key `missing`."""
  for arg in argv:
    path = arg.lstrip('-').split('=', 1)[0]
    if path.startswith('config.') and missing in path.split('.')[1:]:
      return arg
  return None


def _unknown_override(argv: list[str], error: Exception) -> str | None:
  """config_flags' error for `--config.x.y=v` whose key does not exist, as one line."""
  text = str(error).replace("\\'", "'").replace('\\n', '\n')
  found = re.search(r"'(\w+)'", text)
  if not found:
    return None
  arg = _override(argv, found.group(1))
  if arg is None:
    return None
  path = arg.lstrip('-').split('=', 1)[0]
  parent = path[: path.rindex('.')]
  guess = re.search(r'Did you mean "(\w+)"', text)
  hint = f'; did you mean {parent}.{guess.group(1)}?' if guess else ''
  return f'{arg}: {parent} has no key {found.group(1)!r}{hint}'


def _parse_flags(argv: list[str]):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    if len(lines) > 1 and lines[0].endswith('Error whilst parsing config file:'):
      cause = re.sub(r'^\w+Error: ', '', lines[-1])
      fail(f'{lines[0][: -len(" Error whilst parsing config file:")]} {cause}')
    fail(lines[0] if lines else repr(e))
  except (AttributeError, KeyError) as e:  # config_flags: an override of a key that is not there
    message = _unknown_override(argv, e)
    if message is None:
      raise
    fail(message)
  except OSError as e:
    _config_file_error(e)


def _config_file_error(error: OSError) -> NoReturn:
  """config_flags' error for a config file that does not load, as one line (else re-raised)."""
  if 'config file' not in str(error):
    raise error
  fail(' '.join(l.strip() for l in str(error).splitlines()[-2:]))


def run(main: Callable[[list[str]], int | None]) -> None:
  """absl.app.run(main) with the user's mistakes as one line and exit status 2."""

  def guarded(argv):
    try:
      use_compilation_cache(_CACHE.value)
      return main(argv)
    except (errors.UserError, app.UsageError) as e:
      fail(str(e))
    except OSError as e:  # config_flags loads the file when the config is first read
      _config_file_error(e)

  app.run(guarded, flags_parser=_parse_flags)
