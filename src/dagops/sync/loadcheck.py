"""Import check of a code-location tree, run by the sync agent as a subprocess before a swap:

    python -m dagops.sync.loadcheck <tree> <entry>

Imports ``<tree>/<entry>`` the way ``dagster api grpc --python-file ... --working-directory <tree>`` does
(the tree first on sys.path, the file's stem as module name), requires at least one ``dagster.Definitions``
at module level, and validates each with ``Definitions.validate_loadable`` (resources, key clashes, jobs).
Exit 0 and one summary line on stdout when it loads; exit 1 and one error line on stderr when not.
"""

from __future__ import annotations

import importlib.util
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


def _one_line(exc: BaseException, tree: Path) -> str:
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


def load_definitions(tree: Path, entry: str) -> list[tuple[str, Any]]:
    """Import ``entry`` from ``tree`` as the code server does; its module-level ``dagster.Definitions``."""
    import dagster as dg

    path = tree / entry
    if not path.is_file():
        raise FileNotFoundError(f"entry file {entry} is not in the tree")
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    module_name = Path(entry).stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    found = [(name, value) for name, value in vars(module).items() if isinstance(value, dg.Definitions)]
    if not found:
        raise LookupError(f"{entry} defines no dagster.Definitions object at module level")
    return found


def check(tree: Path, entry: str) -> str:
    """Load ``entry`` from ``tree``; return a summary, raise on any failure."""
    import dagster as dg

    found = load_definitions(tree, entry)
    for _, defs in found:
        dg.Definitions.validate_loadable(defs)
    names = ", ".join(name for name, _ in found)
    return f"ok: {entry} defines {names}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m dagops.sync.loadcheck TREE ENTRY", file=sys.stderr)
        return 2
    tree = Path(args[0]).absolute()
    try:
        summary = check(tree, args[1])
    except BaseException as exc:  # anything the user's code raises, SystemExit included
        print(_one_line(exc, tree), file=sys.stderr, flush=True)
        return 1
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
