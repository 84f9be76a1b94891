"""`invoke create`: a new pipeline module (and its test) in a code location, from code_locations/_template."""

from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from dagops import registry
from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.operator.proc import run_checked
from dagops.paths import repo_root

TEMPLATE_DIR = Path("code_locations") / "_template"
# A module name is a location-style name (dagops.names) that is also a Python identifier: no '-'.
PIPELINE_NAME = re.compile(r"[a-z][a-z0-9_]{0,38}")
# Names the template's own code or the location's layout already uses.
RESERVED = frozenset(
    {"dg", "dagster", "dagops", "pipelines", "resources", "definitions", "conftest", "tests"}
)


@dataclass(frozen=True)
class Created:
    module: Path
    test: Path
    check: str


def validate_pipeline_name(name: str) -> str:
    if not isinstance(name, str) or not PIPELINE_NAME.fullmatch(name):
        raise DagopsError(
            f"Invalid pipeline name {name!r}: use 1-39 characters, a lowercase letter first, "
            "then lowercase letters, digits or '_' (it becomes a Python module name)."
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED:
        raise DagopsError(
            f"Invalid pipeline name {name!r}: it is a Python keyword or a name the location uses."
        )
    return name


def create_pipeline(name: str, location: str = "main", root: Path | None = None) -> Created:
    """Write ``pipelines/<name>.py`` and ``tests/test_<name>.py`` in ``location``; check the location loads.

    On any error nothing stays behind: a name that is taken, a location that does not exist or has no
    ``pipelines/`` package, or a new module that makes the location fail to load.
    """
    root = root or repo_root()
    validate_pipeline_name(name)
    validate_location_name(location)
    loc = registry.get(location, root)
    loc_dir = loc.path(root)
    package = loc_dir / "pipelines"
    if not (package / "__init__.py").is_file():
        raise DagopsError(
            f"Code location {location!r} has no pipelines/ package ({package}); "
            "`invoke create` adds modules there."
        )
    module = package / f"{name}.py"
    test = loc_dir / "tests" / f"test_{name}.py"
    for path in (module, test):
        if path.exists():
            raise DagopsError(f"A pipeline named {name!r} already exists in location {location!r} ({path}).")
    if name in _defined_names(package):
        raise DagopsError(
            f"Location {location!r} already defines something named {name!r}; choose another name."
        )
    templates = root / TEMPLATE_DIR
    values = {"name": name, "location": location}
    try:
        module_text = Template((templates / "pipeline.py.tmpl").read_text()).substitute(values)
        test_text = Template((templates / "test_pipeline.py.tmpl").read_text()).substitute(values)
    except OSError as exc:
        raise DagopsError(f"The pipeline template in {templates} cannot be read: {exc.strerror}.") from None
    written: list[Path] = []
    made_tests_dir = not test.parent.exists()
    try:
        test.parent.mkdir(exist_ok=True)
        for path, text in ((module, module_text), (test, test_text)):
            with open(path, "x", encoding="utf-8") as fh:  # "x": never overwrite
                written.append(path)
                fh.write(text)
        check = load_check(loc_dir, loc.entry)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made_tests_dir and test.parent.exists() and not any(test.parent.iterdir()):
            test.parent.rmdir()
        raise
    return Created(module=module, test=test, check=check)


def _defined_names(package: Path) -> set[str]:
    """Top-level function and variable names of the package's modules (asset and job names live there)."""
    names: set[str] = set()
    pattern = re.compile(r"^(?:def\s+(\w+)|(\w+)\s*=)", re.MULTILINE)
    for path in package.glob("*.py"):
        for match in pattern.finditer(path.read_text(errors="replace")):
            names.add(match.group(1) or match.group(2))
    return names


def load_check(loc_dir: Path, entry: str) -> str:
    """Load the location as its code server would (a fresh interpreter); its summary, or DagopsError."""
    proc = run_checked(
        [sys.executable, "-m", "dagops.runtime.sync.loadcheck", str(loc_dir), entry],
        "The location would not load with the new pipeline, so nothing was created",
        timeout=300,
    )
    return proc.stdout.strip()
