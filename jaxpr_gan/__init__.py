"""jaxpr_gan: facial-expression GANs in JAX/Flax (README.md)."""

import logging
import os

# TensorFlow (imported by tensorflow-datasets and clu's writers, never for compute) logs banners
# about oneDNN and CPU instructions at import; JAX logs every backend it cannot start (no TPU on
# a CPU machine). Neither says anything about a run.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
# gs:// and s3:// workdirs (jaxpr_gan.storage, which explains both): etils.epath, orbax's paths,
# must use fsspec rather than tf.io.gfile (no s3://, no GCS test server), and gcsfs its plain
# GCSFileSystem. Both are read once, at the first epath path and at gcsfs's import, which any
# module of this package may trigger before storage is imported: so they are set here, first.
# setdefault: a user may still choose otherwise on purpose.
os.environ.setdefault('EPATH_USE_TF', '0')
os.environ.setdefault('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')
logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)
