"""index.html: per technique its picture, what it shows and its settings, kept in index.json."""

from __future__ import annotations

import html
import pathlib
from collections.abc import Sequence

import records

INDEX = "index.json"  # per technique: its picture, text, settings, seconds and step
PAGE = "index.html"
Section = tuple[str, str, str, dict]  # name, picture file, what it shows, settings


def record(
  folder: pathlib.Path, name: str, section: Section, seconds: float, step: int
) -> dict[str, list]:
  """Adds one technique to INDEX; returns all that INDEX holds."""
  _, picture, description, settings = section
  # Recorded one by one, so that a run cut short or limited by --only adds to the page
  # instead of replacing it.
  return records.update_json(
    folder / INDEX, {name: [picture, description, settings, seconds, int(step)]}
  )


def sections(
  folder: pathlib.Path, recorded: dict[str, list], step: int, order: Sequence[str]
) -> list[Section]:
  """The page's sections: every technique in INDEX whose picture is still there, in `order`,
  naming the step of any made from another checkpoint."""
  shown = []
  for name in order:
    if name not in recorded or not (folder / recorded[name][0]).is_file():
      continue
    picture, description, settings, seconds, made_at = recorded[name]
    older = f", step {made_at}" if made_at != step else ""
    shown.append((name, picture, f"{description} ({seconds:.1f} s{older})", settings))
  return shown


def write(folder: pathlib.Path, title: str, shown: Sequence[Section]) -> pathlib.Path:
  """Writes PAGE: the sections under `title`, each with its settings as a table."""
  parts = [
    "<!doctype html><meta charset='utf-8'>",
    f"<title>{html.escape(title)}</title>",
    "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
    "img{max-width:100%}td{padding:0 8px;font-size:13px}</style>",
    f"<h1>{html.escape(title)}</h1>",
  ]
  for name, picture, description, settings in shown:
    rows = "".join(
      f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
      for k, v in settings.items()
    )
    parts += [
      f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>",
      f"<p>{html.escape(description)}</p>",
      f"<table>{rows}</table>",
      f"<img src='{html.escape(picture)}' alt='{html.escape(name)}'>",
    ]
  path = folder / PAGE
  path.write_text("\n".join(parts) + "\n")
  return path
