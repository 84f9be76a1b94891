"""What a code location loads, and how: the one rule shared by repo.add, the load check, the code server
and the run tasks, so what passes the check is what serves.

A published tree and its manifest ``entry`` (the Python file that yields the Definitions, relative to the
tree) determine everything; nothing else is stored:

- the **project** is the nearest folder above the entry (up to the tree) holding ``pyproject.toml``,
  ``setup.py``, ``setup.cfg`` or ``dg.toml`` (else the tree itself): the working directory of the code
  server and of runs, and where the location's dependencies are declared;
- the **import root** is ``<project>/src`` when the entry lies under it, else the project: it goes
  first on PYTHONPATH (what installing the project would do), with the project after it;
- the entry is loaded **by module name**, the dotted path of the file under the import root
  (``src/pkg/definitions.py`` -> ``pkg.definitions``, ``pkg/__init__.py`` -> ``pkg``), exactly like
  ``dagster api grpc --module-name M --working-directory <project>``; so relative imports work and
  ``pkg/__init__.py`` runs first, as in Dagster. Only a file whose path is no module name (a folder
  or file name with ``-`` or spaces) is loaded **by path** (``--python-file``).

:func:`load` builds the location the way Dagster's gRPC server does (``dagster._grpc.server.
LoadedRepositories``: module-level ``Definitions``, repositories and lazy ``@dg.definitions``
functions, then every definition resolved), so a tree that loads here is one the code server serves.
"""

from __future__ import annotations

import os
import platform
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "dg.toml")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LoadTarget:
    """How to load ``tree/entry``: by module name (``module``) or, when None, by file path."""

    tree: Path
    entry: str
    project: str  # folder relative to the tree ("" for the tree itself)
    import_root: str  # folder relative to the tree, put first on PYTHONPATH
    module: str | None

    @property
    def project_dir(self) -> Path:
        return self.tree / self.project if self.project else self.tree

    @property
    def import_dir(self) -> Path:
        return self.tree / self.import_root if self.import_root else self.tree

    @property
    def python_paths(self) -> list[Path]:
        """Folders to put first on PYTHONPATH: the import root, then the project (once each)."""
        return list(dict.fromkeys([self.import_dir, self.project_dir]))

    def describe(self) -> str:
        where = f" in {self.project}/" if self.project else ""
        return f"module {self.module}{where}" if self.module else f"file {self.entry}"

    def dagster_args(self) -> list[str]:
        """The loading arguments of ``dagster api grpc`` (and ``dagster dev``) for this target."""
        if self.module:
            what = ["--module-name", self.module]
        else:
            what = ["--python-file", str(self.tree / self.entry)]
        return [*what, "--working-directory", str(self.project_dir)]

    def retarget(self, tree: Path) -> LoadTarget:
        """The same target in another copy of the tree (a build folder -> ``current``)."""
        return LoadTarget(Path(tree), self.entry, self.project, self.import_root, self.module)


def _project_of(tree: Path, entry: PurePosixPath) -> str:
    parts = entry.parts[:-1]
    for depth in range(len(parts), 0, -1):
        folder = tree.joinpath(*parts[:depth])
        if any((folder / name).is_file() for name in PROJECT_FILES):
            return "/".join(parts[:depth])
    return ""


def resolve(tree: Path, entry: str) -> LoadTarget:
    """The load target of ``entry`` in ``tree`` (rule in the module docstring); no file is imported."""
    tree = Path(tree)
    rel = PurePosixPath(entry)
    project = _project_of(tree, rel)
    base = PurePosixPath(project) if project else PurePosixPath()
    under = rel.relative_to(base)
    import_root = project
    if under.parts[0] == "src" and len(under.parts) > 1:
        import_root = str(base / "src") if project else "src"
        under = under.relative_to("src")
    parts = list(under.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    module = ".".join(parts) if parts and all(_IDENTIFIER.fullmatch(p) for p in parts) else None
    return LoadTarget(tree, entry, project, import_root, module)


def python_problem(project: Path, running: str | None = None) -> str | None:
    """Why the interpreter (``running``, default this one) cannot run ``project``, or None.

    The project's ``[project] requires-python`` is what pip and uv refuse to install it against. Without
    this check a project written for a newer Python fails its import check with a misleading error
    (e.g. a NameError from annotations that only Python 3.14 leaves unevaluated).
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        table = tomllib.loads((project / "pyproject.toml").read_text()).get("project")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # no pyproject, or one the requirements step reports
    spec = table.get("requires-python") if isinstance(table, dict) else None
    if not isinstance(spec, str) or not spec.strip():
        return None
    running = running or platform.python_version()
    shown = repr(spec[:60])
    try:
        allowed = SpecifierSet(spec)
    except InvalidSpecifier:
        return (
            f"The project's requires-python {shown} in pyproject.toml is not a version specifier (PEP 440)."
        )
    if allowed.contains(running, prereleases=True):
        return None
    return (
        f"The project requires Python {shown} (requires-python in pyproject.toml), "
        f"but the code servers here run Python {running}."
    )


def with_paths(target: LoadTarget, env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with the target's import root and project first on PYTHONPATH."""
    result = dict(env)
    current = [p for p in result.get("PYTHONPATH", "").split(os.pathsep) if p]
    ours = [str(p) for p in target.python_paths]
    result["PYTHONPATH"] = os.pathsep.join(ours + [p for p in current if p not in ours])
    return result


def load(target: LoadTarget, location_name: str | None = None) -> list[str]:
    """Load the target in this process as Dagster's gRPC server does; the repository names."""
    return sorted(load_repositories(target, location_name))


def load_repositories(target: LoadTarget, location_name: str | None = None) -> dict[str, Any]:
    """Load the target in this process as Dagster's gRPC server does; its RepositoryDefinitions by name.

    Raises whatever the user's code raises (or Dagster's load error). The caller sets PYTHONPATH
    (``with_paths``) for the process; the working directory is added here, as Dagster does.
    """
    import sys

    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._grpc.server import LoadedRepositories

    # As PYTHONPATH would put them: after sys.path[0] (the script's folder, which Dagster's loader
    # removes while it imports).
    for path in reversed(target.python_paths):
        if str(path) not in sys.path:
            sys.path.insert(1, str(path))
    origin = LoadableTargetOrigin(
        executable_path=sys.executable,
        python_file=None if target.module else str(target.tree / target.entry),
        module_name=target.module,
        working_directory=str(target.project_dir),
    )
    loaded = LoadedRepositories(
        origin,
        container_image=None,
        entry_point=["dagster"],
        container_context=None,
        code_location_name=location_name,
    )
    repositories = dict(loaded.definitions_by_name)
    if not repositories:
        raise LookupError(f"{target.entry} defines no dagster Definitions")
    return repositories
