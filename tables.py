"""Tables of result rows (one dict per row, the same keys in each): Markdown and CSV.

A study's comparison table and the visualisation sanity check are written with these, so every
table convzoo prints formats its numbers the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def format_value(key: str, value: Any) -> str:
  """A cell: thousands separators for counts, signed deltas, two decimals for errors."""
  if value is None:
    return "–"
  if key in ("params", "flops"):
    return f"{value:,}"
  if key == "params_delta":
    return f"{value:+,}"
  if key.endswith("_delta"):
    return f"{value:+.2f}"
  if isinstance(value, float):
    return f"{value:.2f}" if key != "wall_seconds" else f"{value:.0f}"
  return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  """A Markdown table whose columns are the first row's keys."""
  columns = list(rows[0])
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(format_value(c, row.get(c)) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
  """The rows as CSV with a header line, values unformatted."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()
