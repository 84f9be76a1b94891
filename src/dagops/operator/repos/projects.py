"""Which file of a repository defines its Definitions, found the way Dagster finds them (rule in
:func:`find_entry`), and which folders of a monorepo are Dagster projects."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.repos.validate import ENTRY_PATTERN, validate_entry, validate_path

DEFAULT_ENTRY = "definitions.py"


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Folders never searched for projects: VCS, environments, caches, tests, docs, front-end packages.
_SKIP_DIRS = frozenset({"node_modules", "site-packages", "tests", "test", "docs", "build", "dist"})
PROJECT_SEARCH_DEPTH = 4


def _rel(*parts: str) -> str:
    """Join relative POSIX paths, dropping empty and '.' components."""
    return "/".join(c for p in parts for c in p.split("/") if c not in ("", "."))


def _module_file(tree: Path, module: str, folder: str = "") -> str | None:
    """The file of a dotted module name under ``folder`` or ``folder/src`` (relative to ``tree``)."""
    if not isinstance(module, str) or not _MODULE.fullmatch(module):
        return None
    rel = module.replace(".", "/")
    for base in (folder, _rel(folder, "src")):
        for candidate in (_rel(base, f"{rel}.py"), _rel(base, rel, "__init__.py")):
            if (tree / candidate).is_file():
                return candidate
    return None


def _read_toml(path: Path, tree: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DagopsError(f"The repository's {path.relative_to(tree)} is not valid TOML: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path, tree: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DagopsError(f"The repository's {path.relative_to(tree)} is not valid YAML: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _declared_targets(tree: Path, folder: str) -> list[tuple[str, str, str]]:
    """(kind, name, working folder) of what ``folder``'s own files tell Dagster to load, the first that
    names anything, in ``dagster dev``'s order: pyproject ``[tool.dagster]`` (module_name or modules),
    ``[tool.dg.project]`` (or dg.toml), then workspace.yaml entries, then dagster_cloud.yaml locations.
    ``kind`` is "module" or "file"."""
    here = tree / folder if folder else tree
    found: list[tuple[str, str, str]] = []
    pyproject = here / "pyproject.toml"
    data = _read_toml(pyproject, tree) if pyproject.is_file() else {}
    tool = _table(data, "tool")
    dagster = _table(tool, "dagster")
    dg_file = here / "dg.toml"
    dg = (
        _table(_read_toml(dg_file, tree), "project")
        if dg_file.is_file()
        else _table(_table(tool, "dg"), "project")
    )
    if isinstance(dagster.get("module_name"), str):
        found.append(("module", dagster["module_name"], folder))
    elif isinstance(dagster.get("modules"), list):
        found += [
            ("module", m["name"], folder)
            for m in dagster["modules"]
            if isinstance(m, dict) and m.get("type") == "module" and isinstance(m.get("name"), str)
        ]
    elif isinstance(dg.get("root_module"), str):
        if dg.get("autoload_defs"):
            raise DagopsError(
                f"The dg project in {folder or 'the repository root'} uses autoload_defs, which this stack "
                "does not load: add a definitions.py with a @dg.definitions function returning "
                "dg.load_from_defs_folder(...) and set code_location_target_module (or remove autoload_defs)."
            )
        target = dg.get("code_location_target_module") or f"{dg['root_module']}.definitions"
        found.append(("module", str(target), folder))
    # Then, as `dagster dev` does without pyproject settings, workspace.yaml; then dagster_cloud.yaml.
    for config, key in (("workspace.yaml", "load_from"), ("dagster_cloud.yaml", "locations")):
        path = here / config
        items = _read_yaml(path, tree).get(key) if path.is_file() and not found else None
        for item in items if isinstance(items, list) else []:
            found += _yaml_target(item, folder)
    return found


def _yaml_target(item: Any, folder: str) -> list[tuple[str, str, str]]:
    """One dagster_cloud.yaml location or workspace.yaml load_from entry, as (kind, name, folder)."""
    if not isinstance(item, dict):
        return []
    if isinstance(item.get("code_source"), dict):  # dagster_cloud.yaml
        source = item["code_source"]
        build = _table(item, "build")
        where = item.get("working_directory") or build.get("directory") or "."
    else:  # workspace.yaml: python_module / python_package / python_file, a string or a mapping
        key = next((k for k in ("python_module", "python_package", "python_file") if k in item), None)
        if key is None:
            return []
        value = item[key]
        field = {"python_module": "module_name", "python_package": "package_name"}.get(key, "python_file")
        source = {field: value} if isinstance(value, str) else dict(value or {})
        if key == "python_file" and "relative_path" in source:
            source["python_file"] = source["relative_path"]
        where = source.get("working_directory") or "."
    if not isinstance(where, str) or where.startswith("/") or ".." in where.split("/"):
        return []
    base = _rel(folder, where)
    for kind, field in (("module", "module_name"), ("module", "package_name"), ("file", "python_file")):
        if isinstance(source.get(field), str):
            return [(kind, source[field], base)]
    return []


def _entries_in(tree: Path, folder: str) -> list[str]:
    """The Definitions files of the project in ``folder`` (relative to ``tree``), first rule that finds any:
    what its own files declare (:func:`_declared_targets`), else ``definitions.py`` in the folder, else
    every ``<package>/definitions.py`` or ``src/<package>/definitions.py`` in it (tests excluded)."""
    declared = _declared_targets(tree, folder)
    entries: list[str] = []
    for kind, name, where in declared:
        if kind == "file":
            rel = _rel(where, name)
            found = rel if ENTRY_PATTERN.fullmatch(rel) and (tree / rel).is_file() else None
        else:
            found = _module_file(tree, name, where)
        if found is None:
            raise DagopsError(
                f"The project in {folder or 'the repository root'} names {name!r} for Dagster, but the "
                f"repository has no such {'file' if kind == 'file' else 'module'} there"
                f"{'' if kind == 'file' else ' (looked in the folder and its src/)'}."
            )
        entries.append(found)
    if entries:
        return list(dict.fromkeys(entries))
    here = tree / folder if folder else tree
    if (here / DEFAULT_ENTRY).is_file():
        return [_rel(folder, DEFAULT_ENTRY)]
    return sorted(
        _rel(folder, str(p.relative_to(here)))
        for pattern in (f"*/{DEFAULT_ENTRY}", f"src/*/{DEFAULT_ENTRY}")
        for p in here.glob(pattern)
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(here).parts)
        and p.parent.name not in _SKIP_DIRS
    )


def find_projects(tree: Path) -> dict[str, list[str]]:
    """Folders below the root (depth <= PROJECT_SEARCH_DEPTH) that are Dagster projects: folder ->
    its Definitions files. A project is a folder with pyproject.toml, setup.py, setup.cfg, dg.toml,
    dagster_cloud.yaml or workspace.yaml whose rule (:func:`_entries_in`) finds a file."""
    markers = ("pyproject.toml", "setup.py", "setup.cfg", "dg.toml", "dagster_cloud.yaml", "workspace.yaml")
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        depth = len(here.relative_to(tree).parts)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if depth < PROJECT_SEARCH_DEPTH
            and not d.startswith((".", "_"))
            and d not in _SKIP_DIRS
            and d not in ("venv", "env")
        )
        if depth == 0 or not any(m in filenames for m in markers):
            continue
        folder = here.relative_to(tree).as_posix()
        try:
            entries = _entries_in(tree, folder)
        except DagopsError:
            continue  # reported when the folder is picked with --path
        if entries:
            found[folder] = entries
    return found


def find_entry(tree: Path, entry: str | None = None, path: str | None = None) -> str:
    """The file defining the repository's Definitions, relative to ``tree``.

    Rule, first match wins:
      1. ``entry`` when given (must exist; relative to the repository root);
      2. the project in ``path`` when given, else at the root (:func:`_entries_in`: what pyproject's
         ``[tool.dagster]`` / ``[tool.dg.project]``, dg.toml, dagster_cloud.yaml or workspace.yaml name,
         else ``definitions.py``, else the only ``<package>/definitions.py`` or ``src/<package>/...``);
      3. without ``path`` and nothing at the root: the only project in a subfolder (:func:`find_projects`).
    Several candidates are an error that lists them and says how to pick one.
    """
    if entry is not None:
        validate_entry(entry)
        if not (tree / entry).is_file():
            raise DagopsError(f"The repository has no file {entry!r} (given with --entry).")
        return entry
    if path is not None:
        validate_path(path)
        if not (tree / path).is_dir():
            raise DagopsError(f"The repository has no folder {path!r} (given with --path).")
    folder = path or ""
    entries = _entries_in(tree, folder)
    where = f"{folder}/" if folder else "the repository root"
    if len(entries) == 1:
        return entries[0]
    if entries:
        raise DagopsError(
            f"{where} has several Definitions files ({', '.join(entries)}); choose one with --entry FILE."
        )
    if path is None:
        projects = find_projects(tree)
        every = [e for found in projects.values() for e in found]
        if len(every) == 1:
            return every[0]
        if projects:
            listed = ", ".join(f"{folder}/ ({', '.join(found)})" for folder, found in projects.items())
            raise DagopsError(
                f"The repository holds several Dagster projects: {listed}; choose one with --path FOLDER "
                "(add the repository once per project, each under its own --name)."
            )
    raise DagopsError(
        f"No Dagster Definitions found in {where}: expected definitions.py, <package>/definitions.py, "
        "a [tool.dagster] module_name or [tool.dg.project] in pyproject.toml, or a dagster_cloud.yaml "
        "(name the project's folder with --path, or the file with --entry)."
    )

