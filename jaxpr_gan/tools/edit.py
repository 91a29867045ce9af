"""Edits your own photos with a trained generator (a run directory or an exported file).

  python -m jaxpr_gan.tools.edit --model workdirs/stargan_quick --input me.jpg --target happy
  python -m jaxpr_gan.tools.edit --model mmagan.jaxgen --input photos/ --target happy \
      --intensity 0.25,0.5,1 --mask
  python -m jaxpr_gan.tools.edit --model workdirs/twocet --input me.jpg --reference smiling.jpg
  python -m jaxpr_gan.tools.edit --model workdirs/cyclegan --input me.jpg  # to the other domain

Every image (JPEG, PNG of 8 or 16 bits, with alpha or a palette, grayscale, WebP, BMP; any size;
EXIF orientation applied) is cropped to its centre square or to --box, resized to the model's
size, and translated to every --target (names as the run recorded them; `all` for every one) at
every --intensity (MMA-GAN's intensity, 2CET-GAN's code scale). Written to --out:
  <name>_<target>[_<intensity>].png   each result
  <name>_strip.png                     the cropped input, then every result; with --mask a second
                                       row of the attention masks
  <name>_<target>[_<intensity>]_mask.png   with --mask, for models with attention
A file that cannot be read is reported by name and the others go on; failed.txt lists them,
'path: reason' a line, with each name's own bytes even when it is not UTF-8 (surrogateescape).
Every file is written atomically. The arguments and --out (its folder, or the nearest existing one
above it, must be writable) are checked before the model loads: a mistake is one line.

Multi-attribute (CelebA) StarGAN runs (`jaxpr_gan.attributes.is_multi_attribute`) edit as the
official test does: a target hair colour (Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair) is set
and the other hair colours cleared, any other target (Male, Young, ...) is flipped, and the
photo's other attributes are kept. Those source attributes come from the model's discriminator
(classification logit > 0), or from --attributes Black_Hair,Young (those listed on, the rest
off); each image's are printed. Such a model needs its run directory: an exported file takes
one-hot targets only, and is refused.

  python -m jaxpr_gan.tools.edit --model workdirs/celeba --input me.jpg --target Blond_Hair,Male
"""

import dataclasses
import os
import sys

import numpy as np
from tqdm import tqdm

from input_pipeline import decoding
from jaxpr_gan import attributes
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan.tools import export


@dataclasses.dataclass(frozen=True)
class Request:
  """What to make of every input image."""

  targets: tuple[str, ...] = ()  # empty: the model's default (two domains: the other one)
  intensities: tuple[float, ...] = (1.0,)
  reference: str | None = None  # a face whose expression 2CET-GAN transfers
  box: tuple[int, int, int, int] | None = None  # left, top, right, bottom; default: centre
  mask: bool = False
  attributes: tuple[str, ...] | None = None  # attribute models: the source's; None: from D


def load_model(path: str, step: int | None = None) -> inference.Translator:
  """A run directory (its latest or `step` checkpoint) or a file from jaxpr_gan.tools.export."""
  if os.path.isfile(path):
    return export.load(path)
  return inference.from_run(path, step)


def list_inputs(path: str) -> list[str]:
  """One image file, or the image files of a folder (recursively, sorted)."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise errors.NotFound(f'no such file or folder: {path}')
  found = []
  for root, dirs, names in os.walk(path):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    found += [
      os.path.join(root, f)
      for f in sorted(names)
      if f.lower().endswith(decoding.IMAGE_EXTENSIONS) and not f.startswith('.')
    ]
  if not found:
    raise errors.NotFound(f'{path} holds no image files ({", ".join(decoding.IMAGE_EXTENSIONS)})')
  return found


def _printable(text: str) -> str:
  """`text` with a non-UTF-8 file name's bytes (surrogateescape) shown as \\xNN escapes."""
  return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def check_args(out_dir: str, batch_size: int) -> None:
  """One-line errors for an unusable --out or --batch_size, before any work."""
  if batch_size < 1:
    raise errors.BadInput(f'--batch_size {batch_size}: give 1 or more images per call')
  files.check_folder(out_dir, f'--out {out_dir}', may_create=True)


def _multi_attribute(model: inference.Translator, request: Request) -> bool:
  """Whether `model` edits attributes; an exported attribute model or a stray --attributes is a
  one-line error."""
  multi = model.family == 'conditional' and (
    model.multi_attribute or attributes.is_multi_attribute(model.class_names)
  )
  if multi and model.translate_labels is None:
    raise errors.BadInput(
      f'{model.info.get("file", model.model)}: an exported file takes one-hot targets only, '
      f'which do not edit the attributes ({", ".join(model.class_names)}) of a multi-attribute '
      'model; give its run directory as --model'
    )
  if request.attributes is not None and not multi:
    raise errors.BadInput(f'{model.model} does not edit attributes; drop --attributes')
  return multi


def _attribute_results(model, batch, paths, jobs, request) -> list:
  """Every job's (images, masks) from each face's source attributes, edited as the official test
  does (attributes.target_labels); prints the source attributes per image."""
  if request.attributes is not None:
    row = attributes.given(request.attributes, model.class_names)
    sources, origin = np.tile(row, (len(batch), 1)), '--attributes'
  elif model.classify is None:
    raise errors.BadInput(
      f'{model.model} was imported without its discriminator, whose classifier reads a '
      "photo's attributes: give them with --attributes (e.g. --attributes Black_Hair,Young)"
    )
  else:
    sources, origin = attributes.from_logits(model.source_logits(batch)), 'D'
  for i, path in enumerate(paths):
    found = attributes.describe(sources[i], model.class_names)
    tqdm.write(_printable(f'{path}: source attributes {found} (from {origin})'), file=sys.stdout)
  return [
    model.with_labels(batch, attributes.target_labels(sources, t, model.class_names))
    for _, t, _ in jobs
  ]


def _jobs(model: inference.Translator, request: Request) -> list[tuple[str, int, float]]:
  """(label, target index, intensity) of every output per image; names checked here."""
  if model.family == 'reference':
    if request.reference is None:
      raise errors.BadInput(
        f'{model.model} transfers the expression of a reference face: give --reference face.jpg'
      )
    targets = [('reference', 0)]
  else:
    names = list(request.targets)
    if names == ['all']:
      names = list(model.class_names)
    elif not names:
      if model.family != 'two_domain':
        raise errors.BadInput(f'give --target, one of: {", ".join(model.class_names)} (or all)')
      names = [model.class_names[1]]
    targets = [(n, model.target_index(n)) for n in names]
  scales = request.intensities
  if len(scales) > 1 and not (model.has_intensity or model.family == 'reference'):
    raise errors.BadInput(f'{model.model} has no intensity input; drop --intensity')
  with_scale = model.has_intensity or model.family == 'reference'
  return [
    (f'{n}_{s:g}' if with_scale and len(scales) > 1 else n, t, s)
    for n, t in targets
    for s in scales
  ]


def _write_image(out_dir: str, path: str, face, results, with_mask: bool) -> list[str]:
  """One input's results ((label, image, mask) each) and its strip -> the files written."""
  stem = os.path.splitext(os.path.basename(path))[0]
  written, row, mask_row = [], [face], [np.full_like(face, 255)]
  for label, out, mask in results:
    name = os.path.join(out_dir, f'{stem}_{label}.png')
    images.save_png(name, out)
    written.append(name)
    row.append(out)
    if with_mask:
      mask_name = os.path.join(out_dir, f'{stem}_{label}_mask.png')
      images.save_png(mask_name, images.mask_to_uint8(mask))
      written.append(mask_name)
      mask_row.append(images.mask_to_uint8(mask))
  cells = np.stack([row, mask_row] if with_mask else [row])
  strip = os.path.join(out_dir, f'{stem}_strip.png')
  images.save_png(strip, images.image_grid(cells), min_size=512)
  return written + [strip]


def edit(
  model: inference.Translator,
  inputs: list[str],
  out_dir: str,
  request: Request,
  batch_size: int = 8,
  progress: bool = True,
) -> tuple[list[str], list[str]]:
  """Translates every input as `request` asks; -> (files written, 'path: reason' failures)."""
  check_args(out_dir, batch_size)
  multi = _multi_attribute(model, request)
  jobs = _jobs(model, request)
  if request.mask and not model.has_mask:
    raise errors.BadInput(f'{model.model} has no attention mask; drop --mask')
  size = model.image_size
  reference = None
  if request.reference is not None:
    reference = decoding.load_image(request.reference, size)[None]
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise errors.BadInput(f'--out {out_dir}: cannot make the folder ({e.strerror})') from e
  written, failed = [], []
  bar = tqdm(total=len(inputs), unit='image', disable=not progress or len(inputs) < 2)
  for start in range(0, len(inputs), batch_size):
    paths, faces = [], []
    for path in inputs[start : start + batch_size]:
      try:
        faces.append(decoding.load_image(path, size, crop_box=request.box))
        paths.append(path)
      except decoding.DecodeError as e:
        failed.append(str(e))
        tqdm.write(f'skipped {_printable(str(e))}', file=sys.stderr)
    bar.update(len(inputs[start : start + batch_size]))
    if not faces:
      continue
    # A fixed batch shape: one compilation for the whole folder.
    batch = np.stack(faces + [faces[-1]] * (batch_size - len(faces)))
    if multi:
      results = _attribute_results(model, batch, paths, jobs, request)
    else:
      results = [model(batch, target, scale, reference) for _, target, scale in jobs]
    for i, path in enumerate(paths):
      made = [(label, out[i], mask[i]) for (label, _, _), (out, mask) in zip(jobs, results)]
      written += _write_image(out_dir, path, faces[i], made, request.mask)
  bar.close()
  if failed:
    files.write_text(os.path.join(out_dir, 'failed.txt'), '\n'.join(failed) + '\n')
  return written, failed


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  box = tuple(int(v) for v in f.box) if f.box else None
  if box is not None and len(box) != 4:
    raise app.UsageError('--box takes four numbers: left,top,right,bottom')
  given = None if f.attributes is None else tuple(a for a in f.attributes if a)
  request = Request(
    tuple(f.target or ()), tuple(float(v) for v in f.intensity), f.reference, box, f.mask, given
  )
  check_args(f.out, f.batch_size)
  inputs = list_inputs(f.input)
  model = load_model(f.model, f.step)
  try:
    written, failed = edit(model, inputs, f.out, request, f.batch_size)
  except decoding.DecodeError as e:  # the --reference face
    raise errors.BadInput(str(e)) from e
  summary = f'{len(inputs) - len(failed)} of {len(inputs)} images edited; {len(written)} files in '
  summary += f.out
  if failed:
    summary += f'; {len(failed)} unreadable, listed in {os.path.join(f.out, "failed.txt")}'
  print(_printable(summary))
  return 1 if failed else 0


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string(
    'model', None, 'A run directory (workdir) or a file from jaxpr_gan.tools.export.'
  )
  flags.DEFINE_integer('step', None, 'Checkpoint step of a run directory (default: latest).')
  flags.DEFINE_string('input', None, 'An image file or a folder of images.')
  flags.DEFINE_string('out', 'edits', 'Folder for the results.')
  flags.DEFINE_list(
    'target',
    None,
    'Target expression(s) by name, or "all"; CycleGAN: the '
    'output domain (default: the other one); unused by 2CET-GAN.',
  )
  flags.DEFINE_list(
    'intensity',
    ['1'],
    'MMA-GAN intensity / 2CET-GAN code scale; several values make several results.',
  )
  flags.DEFINE_string('reference', None, '2CET-GAN: the face whose expression to transfer.')
  flags.DEFINE_list(
    'box',
    None,
    'Face box left,top,right,bottom in pixels of the upright photo (default: the centre square).',
  )
  flags.DEFINE_bool('mask', False, 'Also write the attention masks (SARGAN, MMA-GAN, DCAM-GAN).')
  flags.DEFINE_list(
    'attributes',
    None,
    'Multi-attribute (CelebA) models: the attributes the input faces have (e.g. '
    'Black_Hair,Young; the rest are off); default: what the discriminator finds.',
  )
  flags.DEFINE_integer('batch_size', 8, 'Images per call.')
  flags.mark_flags_as_required(['model', 'input'])


if __name__ == '__main__':
  from jaxpr_gan import checkpointing  # pylint: disable=g-import-not-at-top
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  _define_flags()
  checkpointing.quiet_orbax_logging()
  cli.run(main)
