"""The text values of config fields: comma lists, `NAME=VALUE` pairs, choices, dotted overrides.

Every field that holds a list (`model.remove="fc7,conv4"`), pairs (`model.widths="fc6=2048"`,
`optimizer.lr_multipliers="fc8=1,*=0.1"`) or one of a set of names is read here, so a bad entry
gets the same kind of one-line error everywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import ml_collections

Value = TypeVar("Value")


def split_list(text: str | Sequence[str]) -> list[str]:
  """ "fc7, conv4" (or a sequence of names) → ["fc7", "conv4"]; empty entries are dropped."""
  items = text.split(",") if isinstance(text, str) else list(text)
  return [item.strip() for item in items if item.strip()]


def parse_pairs(
  text: str, field: str, convert: Callable[[str], Value], example: str
) -> list[tuple[str, Value]]:
  """ "a=1,b=2" → [("a", convert("1")), ("b", convert("2"))], in order.

  A missing name, a missing "=", or a value `convert` refuses (ValueError) is an error naming
  `field`, the entry and `example`.
  """
  pairs = []
  for entry in split_list(text):
    name, equals, value = (part.strip() for part in entry.partition("="))
    try:
      if not name or not equals:
        raise ValueError(entry)
      pairs.append((name, convert(value)))
    except ValueError:
      raise ValueError(f"bad {field} entry {entry!r}; expected {example}") from None
  return pairs


def check_choice(field: str, value: Any, known: Collection, of: str = "") -> None:
  """Raises "unknown FIELD 'value' [of …]; known: a, b, …" unless `value` is one of `known`."""
  if value not in known:
    listed = sorted(known) if isinstance(known, (set, frozenset, Mapping)) else list(known)
    where = f" of {of}" if of else ""
    raise ValueError(f"unknown {field} {value!r}{where}; known: {', '.join(map(str, listed))}")


def choose(field: str, value: str, table: Mapping[str, Value]) -> Value:
  """table[value], or the "unknown …; known: …" error of `check_choice`."""
  check_choice(field, value, table)
  return table[value]


def with_overrides(
  base: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
  """A copy of `base` with dotted-name fields replaced; unknown fields and bad types are errors."""
  config = copy.deepcopy(base)
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for position, parent in enumerate(parents):
      if not isinstance(node, ml_collections.ConfigDict) or parent not in node:
        raise ValueError(f"unknown config field {'.'.join(parents[: position + 1])!r}")
      node = node[parent]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f"unknown config field {dotted!r}")
    try:
      node[leaf] = value
    except TypeError as error:
      raise ValueError(f"bad value {value!r} for {dotted!r}: {error}") from error
  return config


def get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  """The value of a dotted-name field ("dataset.synthetic.seed")."""
  node = config
  for name in dotted.split("."):
    node = node[name]
  return node
