"""Import check of a code-location tree, run by the sync agent as a subprocess before a swap:

    python -m dagops.runtime.sync.loadcheck <tree> <entry> [<location>]

Loads ``<tree>/<entry>`` the way the code server will (``dagops.runtime.sync.target``: by module name from the
project's working directory, or by path; Dagster's own loader, lazy ``@dg.definitions`` included, every
definition resolved). The caller puts the project's paths and requirements on PYTHONPATH
(``dagops.runtime.requirements.location_env``).
Exit 0 and one summary line on stdout when it loads; exit 1 and one error line on stderr when not.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _where(exc: BaseException, tree: Path) -> str:
    """`` (at rel/path.py:LINE)`` for the deepest frame inside the tree, or ``''``."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return ""  # its message already names the file and line
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(frame.filename).resolve().relative_to(tree.resolve())
        except ValueError:
            continue
        found = f" (at {rel.as_posix()}:{frame.lineno})"
    return found


def _user_error(exc: BaseException) -> BaseException:
    """The user's own exception under Dagster's wrappers (DagsterUserCodeLoadError, DagsterImportError),
    which raise it ``from`` the original: the deepest cause."""
    seen = {id(exc)}
    while (
        exc.__cause__ is not None
        and id(exc.__cause__) not in seen
        and type(exc).__module__.startswith("dagster")
    ):
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _one_line(exc: BaseException, tree: Path) -> str:
    exc = _user_error(exc)
    if isinstance(exc, SyntaxError):
        where = ""
        if exc.filename:
            try:
                name = Path(exc.filename).resolve().relative_to(tree.resolve()).as_posix()
            except ValueError:
                name = Path(exc.filename).name
            where = f" ({name}, line {exc.lineno})"
        return f"SyntaxError: {exc.msg}{where}"
    message = " ".join(str(exc).split()) or "(no message)"
    if len(message) > 400:
        message = message[:397] + "..."
    return f"{type(exc).__name__}: {message}{_where(exc, tree)}"


def _target(tree: Path, entry: str) -> Any:
    """The load target of ``entry`` in ``tree``, with the working directory set to its project."""
    from dagops.runtime.sync import target as load_target

    if not (tree / entry).is_file():
        raise FileNotFoundError(f"entry file {entry} is not in the tree")
    found = load_target.resolve(tree, entry)
    os.chdir(found.project_dir)
    return found


def load_definitions(tree: Path, entry: str, location: str | None = None) -> dict[str, Any]:
    """Load ``entry`` from ``tree`` as the code server does; its RepositoryDefinitions by name."""
    from dagops.runtime.sync import target as load_target

    return load_target.load_repositories(_target(tree, entry), location)


def check(tree: Path, entry: str, location: str | None = None) -> str:
    """Load ``entry`` from ``tree`` as the code server will (``sync.target``); a summary, or raise."""
    from dagops.runtime.sync import target as load_target

    found = _target(tree, entry)
    names = load_target.load(found, location)
    return f"ok: {found.describe()} defines {', '.join(names)}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m dagops.runtime.sync.loadcheck TREE ENTRY [LOCATION]", file=sys.stderr)
        return 2
    tree = Path(args[0]).absolute()
    try:
        summary = check(tree, args[1], args[2] if len(args) == 3 else None)
    except BaseException as exc:  # anything the user's code raises, SystemExit included
        print(_one_line(exc, tree), file=sys.stderr, flush=True)
        return 1
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
