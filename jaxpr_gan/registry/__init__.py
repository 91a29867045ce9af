"""Every model, declared once: how its objective is built, its own checks, its converter.

`config.model` names a registered model (the six of the papers: conditional.py declares StarGAN
and its descendants, two_group.py CycleGAN and 2CET-GAN) or a `Model` declared anywhere else, by
its dotted path ('my_package.my_model.MODEL'; docs/extending.md). Networks and objectives are
built from their config groups whole (`run_config.build`), so a new field is a new config key
only.
"""

from collections.abc import Callable, Mapping
import dataclasses

import jax.numpy as jnp
import ml_collections

from jaxpr_gan import converters
from jaxpr_gan import run_config
from jaxpr_gan.run_config import ConfigError

Config = ml_collections.ConfigDict


def _no_checks(config: Config) -> None:
  del config


def _unchanged(saved: dict) -> dict:
  return saved


@dataclasses.dataclass(frozen=True)
class Model:
  """A model: its `objective` class (whose `family` is the evaluation protocol); `build(config,
  num_classes)` -> that objective with its networks, made from the config groups named in
  `groups`; `check(config)` raises ConfigError for what only this model cannot run; `defaults`
  are its run-level keys beyond run_config.defaults() (e.g. its data grouping, its evaluation
  settings); `upgrade` maps an older run's saved config dict to today's keys; `converter(config)`
  tells tools/convert which official checkpoint feeds which network."""

  name: str
  objective: type
  build: Callable[[Config, int], object]
  groups: tuple[str, ...] = ('generator', 'discriminator', 'loss')
  check: Callable[[Config], None] = _no_checks
  defaults: Mapping = dataclasses.field(default_factory=dict)
  upgrade: Callable[[dict], dict] = _unchanged
  converter: Callable[[Config], converters.Converters] | None = None

  @property
  def family(self) -> str:
    """'conditional', 'two_domain' or 'reference'."""
    return self.objective.family


_MODELS: dict[str, Model] = {}


def register(model: Model) -> Model:
  """Makes `config.model = model.name` build `model`."""
  if model.name in _MODELS and _MODELS[model.name] != model:
    raise ValueError(f'a model named {model.name!r} is registered already')
  _MODELS[model.name] = model
  return model


def names() -> list[str]:
  return sorted(_MODELS)


def get(name: str) -> Model:
  """A registered model, or the Model a dotted path names."""
  if name in _MODELS:
    return _MODELS[name]
  if '.' in str(name):
    model = run_config.named_object(name, 'config.model')
    if not isinstance(model, Model):
      raise ConfigError(
        f'config.model = {name!r} names a {type(model).__name__}, not a registry.Model'
      )
    return model
  raise ConfigError(f'config.model = {name!r} is unknown; known models: {names()}.')


def default_config(name: str) -> Config:
  """run_config.defaults() with the model's own run-level keys: where its config file starts."""
  config = run_config.merged(run_config.defaults(), get(name).defaults)
  config.model = name
  return config


def complete(config: Mapping) -> Config:
  """A run's config (as saved: an older run's may lack keys or name them otherwise) with today's
  keys, every missing one at its default."""
  saved = config.to_dict() if isinstance(config, Config) else dict(config)
  return run_config.merged(default_config(saved['model']), get(saved['model']).upgrade(saved))


def build(config: Config, num_classes: int):
  """The objective of `config.model`, its networks sized from the config."""
  return get(config.model).build(config, num_classes)


def compute_dtype(config: Config):
  """The networks' compute dtype; parameters, optimiser state, losses and the gradient penalty
  stay float32 whatever it is."""
  return jnp.dtype(config.compute_dtype)


def require(ok: bool, config: Config, key: str, why: str) -> None:
  """Unless `ok`: a ConfigError naming config.KEY, its value and `why`."""
  if not ok:
    value = config
    for part in key.split('.'):
      value = value[part]
    raise ConfigError(f'config.{key} = {value!r} {why}.')


# The models of the papers, each declared once.
from jaxpr_gan.registry import conditional  # noqa: E402, F401
from jaxpr_gan.registry import two_group  # noqa: E402, F401
