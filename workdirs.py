"""A run's folder: whether it can hold a run, and the lock that keeps it to one run at a time.

Both are checked before anything is written, so a bad --workdir costs nothing: no folder is
created and nothing that is there changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
from collections.abc import Iterator

import checkpoints
import records
from models import conv

# What a run keeps in its workdir, by kind: a file found where a folder belongs (or the other
# way round) would fail the run only later, in the middle of training.
FOLDERS = (checkpoints.CHECKPOINTS, checkpoints.UNRESTORABLE, records.TENSORBOARD)
FILES = (
  checkpoints.CONFIG_FILE,
  records.METRICS_FILE,
  records.RESULTS_FILE,
  records.CURVES_FILE,
  conv.ROUTES_FILE,
)


def check_usable(workdir: str | pathlib.Path) -> pathlib.Path:
  """The workdir as an absolute path, or a ValueError saying why it cannot hold a run."""
  if not str(workdir).strip():
    raise ValueError("--workdir is empty; name a folder for the run, e.g. --workdir=workdirs/NAME")
  path = pathlib.Path(workdir).expanduser().resolve()
  existing = path
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise ValueError(f"workdir {path}: {existing} is a file, not a folder; use another --workdir")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(
      f"workdir {path}: {existing} is not writable (permission denied or a read-only file "
      "system); use another --workdir"
    )
  for name in FOLDERS:
    folder = path / name
    if folder.exists() and not folder.is_dir():
      raise ValueError(
        f"workdir {path}: {folder} is a file, where the run keeps its {name} folder; "
        "move it away or use another --workdir"
      )
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
      raise ValueError(f"workdir {path}: {folder} is not writable; use another --workdir")
  for name in FILES:
    if (path / name).is_dir():
      raise ValueError(
        f"workdir {path}: {path / name} is a folder, where the run writes its {name}; "
        "move it away or use another --workdir"
      )
  return path


@contextlib.contextmanager
def hold(workdir: pathlib.Path) -> Iterator[None]:
  """Creates the workdir if needed and holds its Lock; folders this made and a failure left
  empty (a refused restore, a bad init_from) are removed again."""
  created = [folder for folder in (workdir, *workdir.parents) if not folder.exists()]
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ValueError(
      f"cannot create workdir {workdir}: {error.strerror}; use another --workdir"
    ) from None
  try:
    with Lock(workdir):
      yield
  except BaseException:
    for folder in created:  # the deepest first
      if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    raise


class Lock:
  """Holds `workdir` for this process: a second run on it is refused while this one lives.

  An exclusive `flock` on the folder itself: nothing is written into the workdir, and the
  system lets go when the process ends, however it ends (a killed run leaves no stale lock).
  """

  def __init__(self, workdir: pathlib.Path):
    self.workdir, self._fd = workdir, None

  def __enter__(self) -> Lock:
    fd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      os.close(fd)
      if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
        raise
      raise ValueError(
        f"workdir {self.workdir} is in use by another run (it holds the workdir's lock); "
        "wait for that run to end, or use another --workdir"
      ) from None
    self._fd = fd
    return self

  def __exit__(self, *exc_info) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the last descriptor releases the lock
      self._fd = None
