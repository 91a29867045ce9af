"""Evaluation of the two-group families on the synthetic faces, where every answer has a truth.

Two-domain (CycleGAN): each test face is translated to the other style; the truth is the same
face (identity and expression) rendered in that style. Reference (2CET-GAN): a neutral target
takes the expression of another identity's emotional face; the truth is the target identity
rendered with the reference's expression. Both report the paired metrics of
`jaxpr_gan.evaluation.metrics.paired` and write a picture with the truths beneath the outputs.
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import images
from jaxpr_gan.evaluation.metrics import paired
from jaxpr_gan.images import to_float


def test_identities(config: ml_collections.ConfigDict) -> np.ndarray:
  """The test identities scored: all 50, or the first `config.eval.num_identities`."""
  return synthetic.identity_ids('test')[: config.eval.num_identities or None]


def _score(fn, inputs: np.ndarray, truths: np.ndarray, batch_size: int, **extra) -> dict:
  """Per-pair metrics of `fn(x, **extra)` (jitted here) against the truths."""

  @jax.jit
  def score(inp, truth, **kw):
    x = to_float(inp)
    return paired.pair_metrics(fn(x, **kw), to_float(truth), x)

  return paired.in_batches(score, dict(inp=inputs, truth=truths, **extra), batch_size)


def _save_rows(path: str, rows: list[list[np.ndarray]]) -> None:
  images.save_png(path, images.image_grid(np.array(rows)), min_size=512)


def evaluate_domains(config: ml_collections.ConfigDict, objective, g_params, out_dir: str) -> dict:
  """Both directions over every test identity and expression; writes eval/grid.png."""
  data = config.data
  ids = test_identities(config)
  keys = [(int(i), c) for i in ids for c in range(data.num_classes)]
  faces = [
    np.stack([synthetic.render_face(i, c, style=style, size=data.image_size) for i, c in keys])
    for style in data.styles
  ]
  report = {'domains': {'a': data.styles[0], 'b': data.styles[1]}}
  for direction, src, dst in (('a2b', 0, 1), ('b2a', 1, 0)):
    fn = functools.partial(objective.translate, g_params, direction=direction)
    report[direction] = paired.summary(_score(fn, faces[src], faces[dst], config.eval.batch_size))
  # Per face: A, G_ab(A), the true B; then B, G_ba(B), the true A.
  count = min(config.eval.num_grid_faces, len(keys))
  pick = np.linspace(0, len(keys) - 1, count).astype(int)
  a, b = faces[0][pick], faces[1][pick]
  ab = images.to_uint8(objective.translate(g_params, to_float(jnp.asarray(a)), 'a2b'))
  ba = images.to_uint8(objective.translate(g_params, to_float(jnp.asarray(b)), 'b2a'))
  rows = [[a[k], ab[k], b[k], b[k], ba[k], a[k]] for k in range(count)]
  _save_rows(os.path.join(out_dir, 'grid.png'), rows)
  return report


def class_mean_codes(
  config: ml_collections.ConfigDict, objective, g_params, num_classes: int
) -> np.ndarray:
  """(num_classes, code_dim): the mean code of each class's emotional training faces (the
  paper's "standard expression code"; `config.eval.codes_per_class` faces each, 0: all); row 0
  (neutral) and classes without faces keep the zero code."""
  emotional = pipeline.make_source(config.data, 'train').groups[1]
  labels = emotional.labels()
  encode = jax.jit(lambda inp: {'code': objective.encode(g_params, to_float(inp))})
  to_example = pipeline.ToExample(config.data.image_size)
  codes = np.zeros((num_classes, objective.code_dim), np.float32)
  limit = config.eval.codes_per_class or None
  for c in range(1, num_classes):
    examples = [to_example.map(emotional[int(i)]) for i in np.flatnonzero(labels == c)[:limit]]
    faces = [e['image'] for e in examples if e['valid']]
    if faces:
      codes[c] = paired.in_batches(encode, {'inp': np.stack(faces)}, config.eval.batch_size)[
        'code'
      ].mean(axis=0)
  return codes


def _save_reference_grid(
  config: ml_collections.ConfigDict, objective, g_params, targets, references, truths, out_dir: str
) -> None:
  """Writes eval/grid.png; per row: target, reference, output, truth."""
  count = min(config.eval.num_grid_faces, len(targets))
  pick = np.linspace(0, len(targets) - 1, count).astype(int)
  out = images.to_uint8(
    objective.transfer(
      g_params, to_float(jnp.asarray(targets[pick])), to_float(jnp.asarray(references[pick]))
    )
  )
  _save_rows(
    os.path.join(out_dir, 'grid.png'),
    [[targets[p], references[p], out[k], truths[p]] for k, p in enumerate(pick)],
  )


def evaluate_reference(
  config: ml_collections.ConfigDict, objective, g_params, class_names, out_dir: str
):
  """Reference-based transfer and neutralisation on the test identities.

  Each test identity is the neutral target of two references (the next two test identities)
  in every emotional class; the truth is the target rendered with that class. Neutralisation
  maps every emotional test face to its identity's neutral face. Writes eval/grid.png.
  Returns (report, translate(x, targets, rho)) where translate applies rho times the class's
  mean training code, for the code-scale sweep.
  """
  data = config.data
  ids = [int(i) for i in test_identities(config)]
  n = len(ids)
  emotional = range(1, len(class_names))
  render = functools.partial(synthetic.render_face, style=data.style, size=data.image_size)
  triples = [(ids[k], ids[(k + j) % n], c) for k in range(n) for j in (1, 2) for c in emotional]
  neutral = {i: render(i, 0) for i in ids}
  faces = {(i, c): render(i, c) for i in ids for c in emotional}
  targets = np.stack([neutral[t] for t, _, _ in triples])
  references = np.stack([faces[(r, c)] for _, r, c in triples])
  truths = np.stack([faces[(t, c)] for t, _, c in triples])
  bs = config.eval.batch_size
  transfer = _score(
    lambda x, reference: objective.transfer(g_params, x, to_float(reference)),
    targets,
    truths,
    bs,
    reference=references,
  )
  keys = list(faces)
  neutralize = _score(
    functools.partial(objective.neutralize, g_params),
    np.stack([faces[k] for k in keys]),
    np.stack([neutral[i] for i, _ in keys]),
    bs,
  )
  report = {
    'transfer': paired.summary(transfer),
    'neutralize': paired.summary(neutralize),
    'class_names': list(class_names),
  }
  _save_reference_grid(config, objective, g_params, targets, references, truths, out_dir)
  codes = jnp.asarray(class_mean_codes(config, objective, g_params, len(class_names)))

  def translate(x, target, rho):
    scale = jnp.broadcast_to(jnp.asarray(rho, jnp.float32), target.shape)[:, None]
    return objective.generate(g_params, x, codes[target] * scale)

  return report, translate
