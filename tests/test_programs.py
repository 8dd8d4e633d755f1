"""The programs as a newcomer meets them: no arguments, --help, and bad values, each answered
with usage or one line before anything is written; and the rule that keeps programs thin (no
library module imports a program)."""

import ast
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Every program and a flag its usage names; `python -m` modules run as users run them.
PROGRAMS = {
  "train.py": "--config",
  "eval.py": "--workdir",
  "ablate.py": "--study",
  "visualize.py": "--workdir",
  "summary.py": "--model",
  "import_weights.py": "--source",
  "predict.py": "--workdir",
  "report.py": "--workdir",
  "-m input_pipeline.color_pca": "--config",
}
# Modules run as programs: `if __name__ == "__main__"` and a command line of their own.
PROGRAM_MODULES = {
  "train",
  "eval",
  "ablate",
  "visualize",
  "summary",
  "import_weights",
  "predict",
  "report",
}


def run_all(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
  """Runs the commands side by side (each mostly imports JAX), as `run_script` would."""
  running = {
    name: subprocess.Popen(
      [sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for name, args in commands.items()
  }
  results = {}
  for name, process in running.items():
    stdout, stderr = process.communicate(timeout=300)
    results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
  return results


@pytest.fixture(scope="module")
def bare_and_help():
  """Every program run without arguments, and with --help."""
  before = sorted(REPO.iterdir())
  asks = ("", "--help")
  commands = {(p, ask): [*p.split(), *([ask] if ask else [])] for p in PROGRAMS for ask in asks}
  results = run_all(commands)
  assert sorted(REPO.iterdir()) == before  # nothing written
  return results


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_bare_invocation_prints_the_usage(program, bare_and_help):
  result = bare_and_help[(program, "")]
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr
  assert PROGRAMS[program] in result.stderr  # the usage lines of the program's docstring
  assert result.stderr.rstrip().endswith("run with --help for every flag")


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_lists_the_program_s_own_flags(program, bare_and_help):
  result = bare_and_help[(program, "--help")]
  assert result.returncode == 0, result.stderr
  assert PROGRAMS[program] in result.stdout
  assert "--[no]verbose" in result.stdout


# name: (command, the first line it must print); {w} is a workdir that must not come to exist.
BAD_VALUES = {
  "visualize-field": (
    ["visualize.py", "--workdir={w}", "--config.visualize.bogus=1"],
    "error: bad config override in --config.visualize.bogus=1: unknown field 'bogus'",
  ),
  "small-input": (
    ["summary.py", "--model=alexnet", "--input_size=8"],
    "error: input 8×8×3 is too small for this network (division by zero); the smallest it "
    "takes is 67×67",
  ),
  "negative-max-images": (
    ["-m", "input_pipeline.color_pca", "--config=configs/default.py", "--max_images=-5"],
    "error: flag --max_images=-5: -5 is not a non-negative integer",
  ),
  "renamed-field": (
    ["train.py", "--config=configs/default.py", "--workdir={w}", "--config.dataset.image_size=28"],
    "error: --config.dataset.image_size=28: dataset.image_size is now dataset.crop_size",
  ),
  "small-split": (
    [
      "train.py",
      "--config=configs/default.py",
      "--workdir={w}",
      "--config.dataset.train_split=train[:100]",
    ],
    "error: batch_size 128 is larger than the training split (100 examples)",
  ),
  "report-missing-folder": (
    ["report.py", "--workdir=/nonexistent/convzoo-run"],
    "error: --workdir=/nonexistent/convzoo-run: no such folder",
  ),
  "misspelt-field": (
    ["train.py", "--config=configs/default.py", "--workdir={w}", "--config.datset.crop_size=28"],
    "error: bad config override in --config.datset.crop_size=28: unknown field 'datset'; did "
    "you mean 'dataset'?",
  ),
}


@pytest.fixture(scope="module")
def bad_values(tmp_path_factory):
  """Each BAD_VALUES command run, with {w} a workdir that must not come to exist."""
  workdir = tmp_path_factory.mktemp("bad") / "run"
  commands = {name: [a.format(w=workdir) for a in args] for name, (args, _) in BAD_VALUES.items()}
  results = run_all(commands)
  assert not workdir.exists()
  return results


@pytest.mark.smoke
@pytest.mark.parametrize("name", BAD_VALUES)
def test_bad_values_are_one_line_before_anything_is_written(name, bad_values):
  result, line = bad_values[name], BAD_VALUES[name][1]
  assert result.returncode == 1
  assert result.stderr.startswith(line), result.stderr
  assert len(result.stderr.strip().splitlines()) <= 2  # the line, and at most where to look


def imported_modules(path: pathlib.Path) -> set[str]:
  """The top-level names of the modules `path` imports."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names |= {alias.name.split(".")[0] for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module.split(".")[0])
  return names


@pytest.mark.smoke
def test_no_library_module_imports_a_program():
  library = [
    p
    for p in REPO.rglob("*.py")
    if p.stem not in PROGRAM_MODULES
    and not {"tests", "benchmarks", "data", "workdirs"} & set(p.relative_to(REPO).parts)
    and not p.relative_to(REPO).parts[0].startswith(".venv")  # .venv, .venv-torch
  ]
  assert len(library) > 40
  offenders = {
    str(p.relative_to(REPO)): sorted(imported_modules(p) & PROGRAM_MODULES)
    for p in library
    if imported_modules(p) & PROGRAM_MODULES
  }
  assert not offenders
  for program in PROGRAM_MODULES:  # and each program is a program: it runs its own main
    assert '__name__ == "__main__"' in (REPO / f"{program}.py").read_text()
