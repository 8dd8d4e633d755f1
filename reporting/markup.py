"""The few HTML pieces the report pages are made of: static markup, no JavaScript, every text
escaped (names and values come from configs and files written elsewhere)."""

from __future__ import annotations

import datetime
import html
import pathlib
import re
from collections.abc import Iterable, Sequence

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:14px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}.note{color:#555}
.status{padding:.4em .8em;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea}.warn{background:#fdecea}.info{background:#eef3fb}
figure{display:inline-block;margin:4px;width:170px;vertical-align:top;font-size:12px}
figure img{width:160px;image-rendering:pixelated}figcaption{line-height:1.3}
pre{background:#f8f8f8;padding:.5em;overflow-x:auto;font-size:12px}
nav a{margin-right:1em}
"""


def escape(value: object) -> str:
  return html.escape(str(value), quote=True)


def page(title: str, body: Sequence[str]) -> str:
  """A whole HTML document."""
  return "\n".join(
    [
      "<!doctype html>",
      "<html lang='en'><head><meta charset='utf-8'>",
      f"<title>{escape(title)}</title>",
      f"<style>{STYLE}</style></head><body>",
      *body,
      "</body></html>",
      "",
    ]
  )


def emptied_assets(folder: pathlib.Path) -> pathlib.Path:
  """The folder of a page's pictures, without the pictures of an earlier page (which may have
  shown more wrong images, or a plot this one leaves out)."""
  folder.mkdir(exist_ok=True)
  for old in folder.glob("*.png"):
    old.unlink()
  return folder


def write_page(
  path: pathlib.Path,
  title: str,
  head: Sequence[str],
  parts: Sequence[tuple[str, str, Sequence[str]]],
  rewrite: str,
) -> pathlib.Path:
  """Writes a report page: `head`, links to the `parts` ((id, title, body) each), the parts as
  sections, and when and how it was written (`rewrite`: the command that writes it again).
  Written to a temporary file and renamed, so a reader never sees half a page."""
  body = [
    *head,
    contents([(i, t) for i, t, _ in parts]),
    *[section(i, t, b) for i, t, b in parts],
    paragraph(
      f"Written {datetime.datetime.now().isoformat(timespec='seconds')} from {path.parent} "
      f"(rewrite it with `{rewrite}`).",
      "note",
    ),
  ]
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(page(title, body))
  temporary.replace(path)
  return path


def section(identifier: str, title: str, body: Iterable[str]) -> str:
  """An `<section id=…>` with its heading: the page's parts, linked from its contents."""
  return "\n".join(
    [f"<section id='{escape(identifier)}'>", f"<h2>{escape(title)}</h2>", *body, "</section>"]
  )


def table(
  header: Sequence[str] | None, rows: Iterable[Sequence[object]], numeric: bool = True
) -> str:
  """A table; numbers (int with thousands separators, float as given) right-aligned when
  `numeric`. Cells are escaped unless they are `Raw`; no header row for `header` None."""
  lines = ["<table>"]
  if header is not None:
    lines.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
  for row in rows:
    cells = []
    for cell in row:
      number = numeric and isinstance(cell, (int, float)) and not isinstance(cell, bool)
      if isinstance(cell, Raw):
        text = cell
      else:
        text = escape(f"{cell:,}" if number and isinstance(cell, int) else cell)
      cells.append(f"<td class='n'>{text}</td>" if number else f"<td>{text}</td>")
    lines.append("<tr>" + "".join(cells) + "</tr>")
  lines.append("</table>")
  return "\n".join(lines)


class Raw(str):
  """Markup that `table` and `paragraph` keep as it is (already escaped)."""


def paragraph(text: str, css_class: str = "") -> str:
  """A paragraph; `code` in backticks is set as code."""
  body = text if isinstance(text, Raw) else re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))
  return f"<p class='{escape(css_class)}'>{body}</p>" if css_class else f"<p>{body}</p>"


def image(source: str, alt: str) -> str:
  return f"<img src='{escape(source)}' alt='{escape(alt)}'>"


def link(target: str, text: str) -> Raw:
  return Raw(f"<a href='{escape(target)}'>{escape(text)}</a>")


def folded(summary: str, body: str) -> str:
  """Content shown on a click, without JavaScript (`<details>`)."""
  return f"<details><summary>{escape(summary)}</summary>\n{body}\n</details>"


def preformatted(text: str) -> str:
  return f"<pre>{escape(text)}</pre>"


def contents(entries: Sequence[tuple[str, str]]) -> str:
  """Links to the page's sections: (id, title) pairs."""
  return "<nav>" + "".join(f"<a href='#{escape(i)}'>{escape(t)}</a>" for i, t in entries) + "</nav>"
