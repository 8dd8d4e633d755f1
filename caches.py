"""Where convzoo keeps what it works out once per machine: the convolution routes it measured
(models/conv.py) and the decoded images of small splits (input_pipeline). Everything here can be
deleted at any time; it is rebuilt when next needed.

$CONVZOO_CACHE_DIR, else ~/.cache/convzoo.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import IO

CACHE_ENV = "CONVZOO_CACHE_DIR"


def root() -> pathlib.Path:
  return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "convzoo")


def write_atomically(path: pathlib.Path, write: Callable[[IO[bytes]], None]) -> bool:
  """`write(file)` into a temporary file beside `path`, renamed over it when complete, so a
  concurrent reader never sees half a file. False (and nothing left behind) when the cache
  cannot be written: a read-only home costs a recomputation next time, nothing else."""
  temporary = None
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as f:
      temporary = f.name
      write(f)
    os.replace(temporary, path)
    return True
  except OSError:
    if temporary:
      pathlib.Path(temporary).unlink(missing_ok=True)
    return False
