"""Multi-attribute (CelebA) StarGAN models: which runs are, and their edited label vectors.

A CelebA StarGAN is conditioned on a vector of attributes that hold at once (Black_Hair, Male,
Young, ...), not on one class. Edits follow the official test code (yunjey/stargan solver.py
`create_labels`): a target hair colour is set and the other hair colours cleared; any other
target attribute is flipped (1 - c); the source's other attributes are kept. The source
attributes of an unlabelled photo come from the model's own discriminator (its classification
logits thresholded at 0) or from the user.
"""

from collections.abc import Sequence

import numpy as np

from jaxpr_gan import errors

HAIR_COLOURS = ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair')  # mutually exclusive
CELEBA_ATTRIBUTES = frozenset(
  '5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose '
  'Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee '
  'Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard '
  'Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair '
  'Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie '
  'Young'.split()
)  # the 40 columns of CelebA's list_attr_celeba.txt


def is_multi_attribute(class_names: Sequence[str], source: str | None = None) -> bool:
  """Whether a conditional model's classes are attributes that hold together.

  The rule: its data came from an attribute file (config.data.source 'attributes'), or every
  class name is a CelebA attribute (e.g. an official checkpoint imported with --preset celeba,
  whose config does not name the data). `source` is None when unknown (an exported file).
  """
  names = list(class_names)
  return source == 'attributes' or (bool(names) and all(n in CELEBA_ATTRIBUTES for n in names))


def target_labels(source: np.ndarray, target: int, class_names: Sequence[str]) -> np.ndarray:
  """Source attributes (B, A) in {0, 1} -> the label vectors (B, A) float32 for `target`."""
  labels = np.array(source, np.float32)
  if class_names[target] in HAIR_COLOURS:
    for j, name in enumerate(class_names):
      if name in HAIR_COLOURS:
        labels[:, j] = 0.0
    labels[:, target] = 1.0
  else:
    labels[:, target] = (labels[:, target] == 0).astype(np.float32)
  return labels


def from_logits(logits: np.ndarray) -> np.ndarray:
  """D's classification logits (B, A) -> attributes in {0, 1}: present where the logit is > 0."""
  return (np.asarray(logits) > 0).astype(np.float32)


def given(names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
  """--attributes: the listed attributes 1, the rest 0 -> (A,) float32."""
  unknown = [n for n in names if n not in class_names]
  if unknown:
    raise errors.BadInput(
      f'--attributes: unknown {", ".join(unknown)}; this model knows {", ".join(class_names)}'
    )
  return np.asarray([float(n in names) for n in class_names], np.float32)


def describe(row: np.ndarray, class_names: Sequence[str]) -> str:
  """The attributes present in one row, e.g. 'Black_Hair, Young' ('none' when none is)."""
  return ', '.join(n for n, v in zip(class_names, row) if v) or 'none'
