"""Networks, one file per paper."""

import jax


def count_params(module, *inputs) -> int:
  """Number of parameters of a Flax module at the given input shapes (no arrays allocated)."""
  variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
  return sum(x.size for x in jax.tree.leaves(variables['params']))
