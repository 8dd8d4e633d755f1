"""Reading a report page as a test sees it: its sections, pictures, links and text (parsed,
not searched as a string), and the check that every picture it shows exists."""

from __future__ import annotations

import dataclasses
import html.parser
import pathlib

# The sections of a run's page and of a study's, in order (reporting/run_page.py, study_page.py).
RUN_SECTIONS = (
  "summary",
  "config",
  "curves",
  "classes",
  "confusion",
  "wrong",
  "layers",
  "visualizations",
)
STUDY_SECTIONS = ("table", "curves", "size", "variants")


@dataclasses.dataclass
class Page:
  sections: list[str] = dataclasses.field(default_factory=list)  # the <section id=…> in order
  images: list[str] = dataclasses.field(default_factory=list)  # every <img src=…>
  links: list[str] = dataclasses.field(default_factory=list)  # every <a href=…>
  text: str = ""  # the visible text, whitespace collapsed


class _Parser(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.page, self._text = Page(), []

  def handle_starttag(self, tag, attrs):
    attributes = dict(attrs)
    if tag == "section":
      self.page.sections.append(attributes["id"])
    elif tag == "img":
      self.page.images.append(attributes["src"])
    elif tag == "a":
      self.page.links.append(attributes["href"])

  def handle_data(self, data):
    self._text.append(data)


def read(path: pathlib.Path, sections: tuple[str, ...]) -> Page:
  """The page at `path`, checked: it holds `sections` in that order, and every picture it shows
  and every file it links to exists beside it."""
  parser = _Parser()
  parser.feed(path.read_text())
  parser.close()
  page = parser.page
  page.text = " ".join(" ".join(parser._text).split())
  assert page.sections == list(sections), page.sections
  for target in page.images + [link for link in page.links if not link.startswith("#")]:
    assert (path.parent / target).is_file(), target
  for image in page.images:
    assert (path.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
  return page
