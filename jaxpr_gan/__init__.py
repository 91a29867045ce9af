"""jaxpr_gan: facial-expression GANs in JAX/Flax (README.md)."""

import logging
import os

# TensorFlow (imported by tensorflow-datasets and clu's writers, never for compute) logs banners
# about oneDNN and CPU instructions at import; JAX logs every backend it cannot start (no TPU on
# a CPU machine). Neither says anything about a run.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)
