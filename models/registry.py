"""The model registry: each family file declares its networks with `@register`.

A registered name carries its builder (num_classes, **family fields → layer table), its native
input and class count, what `model.norm=default` means for it, and its default activation. The
family fields a config may set (`model.form`, `model.shortcut`, …) and their defaults are read
from the builder's signature, less the arguments a name binds (a VGG's configuration, a
ResNet's depth).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import config_values

NORMS = ("default", "lrn", "batch", "none")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  name: str
  build: Callable[..., tuple]  # (num_classes, **family fields) → layer table
  input_size: int  # native square input, pixels
  channels: int  # native input channels
  num_classes: int  # for summaries without a dataset
  norm: str  # what model.norm=default means: lrn, batch or none
  defaults: Mapping[str, Any]  # family fields → their defaults, from the signature
  activation: Callable[..., str]  # (**family fields) → the network's own activation

  @property
  def fields(self) -> tuple[str, ...]:
    return tuple(self.defaults)

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return self.input_size, self.input_size, self.channels


REGISTRY: dict[str, ModelEntry] = {}


def register(
  names: str | Mapping[str, Mapping[str, Any]],
  *,
  input_size: int,
  channels: int = 3,
  num_classes: int = 1000,
  norm: str = "none",
  activation: Callable[..., str] = lambda **_: "relu",
) -> Callable:
  """Registers the decorated table builder under `names`.

  `names` is one name, or {name: arguments it binds} for a builder that makes several
  networks, e.g. {"vgg_a": {"configuration": "a"}, …}.
  """
  config_values.check_choice("default norm", norm, NORMS[1:])
  named = {names: {}} if isinstance(names, str) else names

  def decorator(build: Callable[..., tuple]) -> Callable[..., tuple]:
    parameters = list(inspect.signature(build).parameters.values())[1:]  # after num_classes
    for name, bound in named.items():
      if name in REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
      defaults = {p.name: p.default for p in parameters if p.name not in bound}
      missing = [field for field, default in defaults.items() if default is inspect.Parameter.empty]
      if missing:
        raise TypeError(f"{build.__name__}: family fields need defaults: {', '.join(missing)}")
      REGISTRY[name] = ModelEntry(
        name,
        functools.partial(build, **bound),
        input_size,
        channels,
        num_classes,
        norm,
        defaults,
        activation,
      )
    return build

  return decorator


def unregister(*names: str) -> None:
  """Removes names from the registry (for networks registered by tests)."""
  for name in names:
    REGISTRY.pop(name, None)


# The names torchvision and timm give the same networks, as people type them.
ALIASES = {"vgg11": "vgg_a", "vgg13": "vgg_b", "vgg16": "vgg_d", "vgg19": "vgg_e"}


def entry(name: str) -> ModelEntry:
  """The registered network `name` (or its torchvision name), or an error listing the known
  names."""
  name = ALIASES.get(name, name)
  if name not in REGISTRY:
    batch_norm = ALIASES.get(name.removesuffix("_bn"))
    if batch_norm and name.endswith("_bn"):  # torchvision's vgg16_bn: a VGG with batch norm
      raise ValueError(f"unknown model {name!r}; it is {batch_norm} with model.norm=batch")
  return config_values.choose("model", name, REGISTRY)
