"""The points of a sweep: config files, variants and --set values, typed and checked.

A point is a config file's variant with values set on it (`make_points`); `--variants` entries are
'' (the base variant), '+MOD' (modifiers appended), 'VARIANT' or 'FILE.py[:VARIANT]'; `--set`
values are typed from the config's own field (`parse_value`). Every point's config is validated
before anything trains (`validate`).
"""

import ast
from collections.abc import Mapping, Sequence
import dataclasses
import importlib.util
import os
import re
import sys
from typing import Any

import jax
import ml_collections

from jaxpr_gan import config_validation
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan import run_config


@dataclasses.dataclass
class Point:
  """One setting: a config file's variant with the --set values of this point."""

  name: str
  slug: str
  config_file: str
  variant: str
  overrides: dict
  config: ml_collections.ConfigDict = dataclasses.field(repr=False)

  def describe(self) -> dict:
    return {k: getattr(self, k) for k in ('name', 'slug', 'config_file', 'variant', 'overrides')}


def split_top(text: str) -> list[str]:
  """Splits at the commas outside brackets and quotes: '(a,b),c' -> ['(a,b)', 'c']."""
  parts, depth, quote, start = [], 0, '', 0
  for i, ch in enumerate(text):
    if quote:
      quote = '' if ch == quote else quote
    elif ch in '\'"':
      quote = ch
    elif ch in '([{':
      depth += 1
    elif ch in ')]}':
      depth -= 1
    elif ch == ',' and depth == 0:
      parts.append(text[start:i].strip())
      start = i + 1
  return parts + [text[start:].strip()]


def load_config(config_file: str, variant: str = '') -> ml_collections.ConfigDict:
  """`get_config(variant)` of a config file, as --config FILE:VARIANT loads it."""
  if not os.path.isfile(config_file):
    raise errors.NotFound(f'config file {config_file} not found')
  folder = os.path.dirname(os.path.abspath(config_file))
  if os.path.basename(folder) == 'configs' and os.path.dirname(folder) not in sys.path:
    sys.path.insert(0, os.path.dirname(folder))  # the configs import `from configs import ...`
  name = 'sweep_config_' + re.sub(r'\W', '_', os.path.abspath(config_file))
  spec = importlib.util.spec_from_file_location(name, config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    return module.get_config(variant) if variant else module.get_config()
  except ValueError as e:  # configs/variants.py: an unknown variant or modifier
    raise errors.ConfigError(f'{config_file}:{variant}: {e}') from e


def _reference(config: ml_collections.ConfigDict, key: str, text: str, where: str) -> Any:
  """The value `key` (dotted) has in `config`: its type is what a new value must have."""
  group, parts = config, key.split('.')
  for k, part in enumerate(parts):
    if not isinstance(group, ml_collections.ConfigDict) or part not in group:
      known = group.keys() if isinstance(group, ml_collections.ConfigDict) else ()
      raise run_config.unknown_key('.'.join(parts[: k + 1]), text, known, where)
    group = group[part]
  if isinstance(group, ml_collections.ConfigDict):
    raise errors.ConfigError(f'config.{key} is a group in {where}; set one of its keys')
  return group


def parse_value(text: str, ref: Any) -> Any:
  """A command-line value as ml_collections parses an override of a field like `ref`: bools as
  true/false, numbers and quoted strings as Python literals, tuples as (a,b) or a single item,
  anything else as the text."""
  text = text.strip()
  if isinstance(ref, bool) and text.lower() in ('true', 'false'):
    return text.lower() == 'true'
  if isinstance(ref, (tuple, list)):
    inner = text[1:-1] if text[:1] + text[-1:] in ('()', '[]') else text
    item = ref[0] if ref else None
    return tuple(parse_value(t, item) for t in split_top(inner) if t)
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text
  if isinstance(ref, str) and not isinstance(value, str):
    return text
  if isinstance(ref, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  return value


def _typed(config, key: str, value: Any, where: str, arg: str) -> Any:
  """`value` (a text from the command line or a typed value) checked against config.<key>."""
  try:
    ref = _reference(config, key, str(value), where)
    value = parse_value(value, ref) if isinstance(value, str) else value
    run_config.check_value(key, value, ref, f'in {where}')
  except errors.UserError as e:
    raise errors.ConfigError(f'{arg}: {e}') from e
  return value


def _entries(variants: str | Sequence[str], config_file: str, variant: str) -> list[tuple]:
  """--variants entries -> (config file, variant, label): '' the base, '+MOD...' appended to
  the base variant, 'FILE.py[:VARIANT]' another config file, else a variant of --config."""
  entries = split_top(variants) if isinstance(variants, str) else list(variants) or ['']
  out = []
  for entry in entries:
    if entry.startswith('+'):
      out.append((config_file, variant + entry, variant + entry))
    elif ':' in entry or entry.endswith('.py'):
      path, _, var = entry.partition(':')
      stem = os.path.splitext(os.path.basename(path))[0]
      out.append((os.path.normpath(path), var, f'{stem}:{var}' if var else stem))
    else:
      out.append((config_file, entry or variant, entry or variant or 'default'))
  return out


def make_points(
  config_file: str,
  variant: str,
  sets: Sequence[str] = (),
  variants: str | Sequence[str] = ('',),
  fixed: Mapping[str, Any] | Sequence[str] = (),
) -> list[Point]:
  """The product of the variants and the --set values, each config built and type-checked."""
  config_file = os.path.normpath(config_file)
  fixed = fixed if isinstance(fixed, Mapping) else dict(map(pair, fixed))
  axes = []
  for arg in sets:
    key, text = pair(arg)
    axes.append([(key, t, arg) for t in split_top(text)])
  combos = [[]]
  for axis in axes:
    combos = [c + [v] for c in combos for v in axis]
  points = []
  for file, var, label in _entries(variants, config_file, variant):
    for combo in combos:
      where = f'{file}:{var}'
      config = load_config(file, var)
      for key, value in fixed.items():
        run_config.set_dotted(config, {key: _typed(config, key, value, where, f'{key}={value}')})
      overrides = {key: _typed(config, key, text, where, arg) for key, text, arg in combo}
      run_config.set_dotted(config, overrides)
      name = ' '.join([label] + [f'{key}={text}' for key, text, _ in combo])
      slug = re.sub(r'[^A-Za-z0-9._+=-]+', '_', name.replace(':', '_'))
      points.append(Point(name, slug, file, var, overrides, config))
  for attr in ('name', 'slug'):
    seen = [getattr(p, attr) for p in points]
    if len(set(seen)) < len(seen):
      raise errors.BadInput(f'two points share the {attr} in {seen}: list each setting once')
  return points


def pair(arg: str) -> tuple[str, str]:
  key, sep, value = arg.partition('=')
  if not sep or not key.strip() or not value.strip():
    raise errors.BadInput(f'{arg!r}: expected KEY=VALUE[,VALUE...], e.g. loss.lambda_rec=10,5')
  return key.strip().removeprefix('config.'), value.strip()


def validate(points: list[Point]) -> None:
  """The config checks of a training run, for every point before any trains."""
  for p in points:
    try:
      config_validation.validate(
        registry.complete(p.config), jax.device_count(), None, jax.devices()[0].platform
      )
    except errors.UserError as e:
      raise errors.ConfigError(f'point {p.name!r}: {e}') from e
