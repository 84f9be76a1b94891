"""Import check that turns into the code server: one dagster start-up instead of two after each change.

    python -m dagops.sync.warmserver --result-fd N --tree BUILD --entry FILE --chdir DIR -- api grpc ...

1. imports dagster and checks ``BUILD/FILE`` exactly as ``dagops.sync.loadcheck`` does;
2. writes ``OK <summary>`` or ``FAIL <one line>`` to file descriptor N (a pipe to the agent), closes it;
3. waits for a line on stdin: ``serve`` (the agent has swapped ``current`` and stopped the old server)
   or end of input (the agent discarded this release: exit 0);
4. on ``serve``: forgets the modules imported from BUILD, changes to DIR and runs dagster's own command
   line in this process (``python -m dagster api grpc ...`` with the arguments after ``--``), so the
   code is loaded afresh from ``current`` while dagster itself is already imported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
from pathlib import Path

from dagops.sync.loadcheck import _one_line, check


def _forget_tree(tree: str) -> None:
    """Drop modules loaded from ``tree`` (and the tree from sys.path) so they load again from ``current``."""
    prefix = tree.rstrip("/") + "/"
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(prefix):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p != tree and not p.startswith(prefix)]
    for key in [k for k in sys.path_importer_cache if k == tree or k.startswith(prefix)]:
        del sys.path_importer_cache[key]
    importlib.invalidate_caches()


# Modules `python -m dagster api grpc` imports before it serves (found with `python -X importtime`);
# importing them while the agent swaps `current` takes about 2 s off the restart (the last five about
# 0.3 s: loading code through reconstruct.py imports the storage layer, structlog and rich).
# Only a warm-up: a name that moves just makes it slower.
_CLI_MODULES = (
    "dagster._cli",
    "dagster._cli.api",
    "dagster._grpc.server",
    "dagster._core.definitions.reconstruct",
    "dagster._core.workspace.autodiscovery",
    "dagster._utils.test.definitions",
    "dagster._utils.log",
    "structlog.dev",
)


def _preload_cli() -> None:
    for name in _CLI_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - best effort, see above
            continue


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args:
        print("usage: python -m dagops.sync.warmserver OPTIONS -- DAGSTER_ARGS", file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m dagops.sync.warmserver")
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--tree", required=True)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--chdir", required=True)
    opts = parser.parse_args(args[:split])
    dagster_args = args[split + 1 :]
    tree = str(Path(opts.tree).absolute())
    with os.fdopen(opts.result_fd, "w") as result:
        try:
            summary = check(Path(tree), opts.entry)
        except BaseException as exc:  # anything the user's code raises
            result.write(f"FAIL {_one_line(exc, Path(tree))}\n")
            return 1
        result.write(f"OK {summary}\n")
    _preload_cli()
    if sys.stdin.readline().strip() != "serve":
        return 0
    _forget_tree(tree)
    os.chdir(opts.chdir)
    sys.argv = ["dagster", *dagster_args]
    runpy.run_module("dagster", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
