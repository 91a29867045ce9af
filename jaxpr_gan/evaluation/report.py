"""eval/report.html: one page with a run's metrics, its config (hash and every key) and its
evaluation pictures.

Self-contained apart from the PNGs beside it (relative links), so the eval folder can be copied
or served as it is.
"""

import datetime
import html
import os

import ml_collections

from jaxpr_gan import files
from jaxpr_gan import run_config
from jaxpr_gan import storage

PICTURES = (  # file in eval/, caption
  (
    'grid.png',
    'Translations. Synthetic data: each input row is followed by the rendered truths '
    'of its targets; two-domain: A, A->B, true B, B, B->A, true A; reference: '
    'target, reference, output, truth.',
  ),
  (
    'masks.png',
    'Attention masks: each face translated to every class, beneath it the mask '
    '(white: the generator changes the pixel).',
  ),
  ('intensity.png', 'Intensity sweep: outputs at each rho, beneath them the rendered truths.'),
  (
    'code_scale.png',
    "Code-scale sweep: each class's mean code times the scale, on neutral "
    'faces, with the truths beneath.',
  ),
)


def _rows(value, prefix: str = ''):
  """Flattens nested metrics into (dotted name, value) rows; lists stay one row."""
  if isinstance(value, dict):
    for k, v in value.items():
      yield from _rows(v, f'{prefix}{k}.' if isinstance(v, dict) else f'{prefix}{k}')
  else:
    yield prefix.rstrip('.'), value


def _format(value) -> str:
  if isinstance(value, float):
    return f'{value:.4g}'
  if isinstance(value, (list, tuple)):
    return ', '.join(_format(v) for v in value)
  return str(value)


def _config_table(config: ml_collections.ConfigDict) -> str:
  """Every key of the config, dotted, folded away under its hash."""
  rows = ''.join(
    f'<tr><td>config.{html.escape(k)}</td><td class="v">{html.escape(_format(v))}</td></tr>'
    for k, v in sorted(run_config.flatten(config).items())
  )
  return (
    f'<details><summary>Config <code>{run_config.config_hash(config)}</code> (every key)'
    f'</summary><table><tr><th>key</th><th>value</th></tr>{rows}</table></details>'
  )


def write(path: str, config: ml_collections.ConfigDict, workdir: str, report: dict) -> None:
  folder = os.path.dirname(path)
  metrics = {k: v for k, v in report.items() if k not in ('config', 'config_hash')}
  skipped = [(name, v) for name, v in _rows(metrics) if name.endswith('skipped')]
  rows = [(name, v) for name, v in _rows(metrics) if not name.endswith('skipped')]
  parts = [
    '<!doctype html><html><head><meta charset="utf-8">',
    f'<title>{html.escape(config.model)} evaluation</title>',
    '<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}'
    'table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;'
    'text-align:left}td.v{font-family:monospace}img{max-width:100%;image-rendering:'
    'pixelated}.skip{color:#a40}</style></head><body>',
    f'<h1>{html.escape(config.model)} at step {html.escape(str(report.get("step")))}</h1>',
    f'<p>Run: <code>{html.escape(storage.absolute(workdir))}</code>; data: '
    f'{html.escape(str(config.data.source))}, {config.data.image_size} px; written '
    f'{datetime.datetime.now().isoformat(timespec="seconds")}; config hash '
    f'<code>{run_config.config_hash(config)}</code>.</p>',
  ]
  for name, note in skipped:
    parts.append(f'<p class="skip"><b>{html.escape(name)}</b>: {html.escape(str(note))}</p>')
  parts.append('<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>')
  parts += [
    f'<tr><td>{html.escape(n)}</td><td class="v">{html.escape(_format(v))}</td></tr>'
    for n, v in rows
  ]
  parts.append('</table>')
  parts.append(_config_table(config))
  for file_name, caption in PICTURES:
    if os.path.exists(os.path.join(folder, file_name)):
      parts.append(
        f'<h2>{html.escape(file_name[:-4])}</h2><p>{html.escape(caption)}</p>'
        f'<img src="{file_name}" alt="{html.escape(file_name)}">'
      )
  parts.append('</body></html>')
  files.write_text(path, '\n'.join(parts))
