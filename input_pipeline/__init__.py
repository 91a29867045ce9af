"""The input pipeline: sources, decoding, the grain pipeline (README.md, docs/data.md)."""

import jaxpr_gan  # noqa: F401  (quiets TensorFlow's start-up banners before it is imported)
