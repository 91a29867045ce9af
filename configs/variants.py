"""Variant strings of the model configs: a base ('', 'quick', 'tiny') and '+'-joined modifiers."""

BASES = ('', 'quick', 'tiny')


def parse(variant: str, modifiers: tuple[str, ...]) -> tuple[str, list[str]]:
  """'quick+a+b' -> ('quick', ['a', 'b']); a modifier alone applies to the paper settings ('')."""
  base, *mods = variant.split('+')
  if base in modifiers:
    base, mods = '', [base, *mods]
  if base not in BASES:
    raise ValueError(f"unknown variant {variant!r}: use '', 'quick' or 'tiny', optionally "
                     f"followed by '+MODIFIER' with MODIFIER in {sorted(modifiers)}.")
  for m in mods:
    if m not in modifiers:
      raise ValueError(f'unknown modifier {m!r} in {variant!r}; known: {sorted(modifiers)}')
  return base, mods
