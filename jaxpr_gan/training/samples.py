"""Sample pictures: a fixed batch of test faces, translated the objective's way, as one grid."""

import ml_collections
import numpy as np

from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import images


def sample_inputs(config: ml_collections.ConfigDict, test_source, num_faces: int, keys):
  """A fixed batch of test examples for sample grids (synthetic faces: different identities,
  cycling through the expressions), with the fields `keys` (the objective's batch keys).

  Undecodable files are left out; when none of the chosen ones decodes, raises
  pipeline.NoValidData naming the test source and the first reasons."""
  num_classes = len(test_source.class_names)
  count = min(num_faces, len(test_source))
  if isinstance(test_source, synthetic.SyntheticFaces):  # index = identity * classes + class
    indices = [(k * num_classes + k % num_classes) % len(test_source) for k in range(count)]
  else:
    indices = np.linspace(0, len(test_source) - 1, count).astype(int).tolist()
  to_example = pipeline.ToExample(config.data.image_size, pipeline.max_pixels(config.data))
  read = [to_example.map(test_source[i]) for i in indices]
  examples = [e for e in read if e['valid']]
  if not examples:
    where = pipeline.source_name(test_source)
    raise pipeline.no_valid_data(where, len(read), [str(e['reason']) for e in read])
  return {k: np.stack([e[k] for e in examples]) for k in keys}


def sample_grid(sample_cells, g_params, batch: dict[str, np.ndarray]) -> np.ndarray:
  """The objective's sample picture as one uint8 grid; `sample_cells` jitted by the caller."""
  return images.image_grid(images.to_uint8(sample_cells(g_params, batch)))
