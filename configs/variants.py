"""Variant strings of the model configs: a base ('', 'quick', 'tiny') and '+'-joined modifiers,
each an override dict ({'generator.conv_dim': 16, ...}) applied in order."""

from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxpr_gan import run_config

BASES = ('', 'quick', 'tiny')
Overrides = Mapping[str, Any]


def parse(variant: str, modifiers) -> tuple[str, list[str]]:
  """'quick+a+b' -> ('quick', ['a', 'b']); a modifier alone applies to the paper settings ('')."""
  base, *mods = variant.split('+')
  if base in modifiers:
    base, mods = '', [base, *mods]
  if base not in BASES:
    raise ValueError(
      f"unknown variant {variant!r}: use '', 'quick' or 'tiny', optionally "
      f"followed by '+MODIFIER' with MODIFIER in {sorted(modifiers)}."
    )
  for m in mods:
    if m not in modifiers:
      raise ValueError(f'unknown modifier {m!r} in {variant!r}; known: {sorted(modifiers)}')
  return base, mods


def apply(config: ml_collections.ConfigDict, *overrides: Overrides) -> ml_collections.ConfigDict:
  """Sets each override dict's dotted keys on `config`, in order; returns it."""
  for o in overrides:
    run_config.set_dotted(config, o)
  return config
