"""Import check that turns into the code server: one dagster start-up instead of two after each change.

    python -m dagops.runtime.sync.warmserver --result-fd N --tree BUILD --entry FILE --chdir DIR
        [--location NAME]
                                     -- api grpc ...
    python -m dagops.runtime.sync.warmserver --standby --result-fd N

The standby form imports dagster, the loader and what ``dagster api grpc`` imports, writes ``READY``
to file descriptor N, then blocks on stdin (no polling) until the agent sends one JSON line
``{"argv": [...], "env": {...}, "cwd": TREE}``: the arguments of the first form, the check's environment
and working directory. It then takes that environment and the ``sys.path`` a fresh ``python -m`` in TREE
would have, and goes on exactly as the first form (steps 1-4 below), so a change costs only the user's
code, not dagster's import. End of input before a job: exit 0. The agent starts the next one when one
takes its check (once that check is done if it was still importing), else after a serve
(``CodeServer.spawn_standby``), and uses it only when its environment matches the check's outside the
tree (same requirements).

1. imports dagster and checks ``BUILD/FILE`` exactly as ``dagops.runtime.sync.loadcheck`` does;
2. writes ``OK <summary>`` or ``FAIL <one line>`` to file descriptor N (a pipe to the agent), closes it;
3. waits for a line on stdin: ``serve`` (the agent has swapped ``current`` and stopped the old server)
   or end of input (the agent discarded this release: exit 0);
4. on ``serve``: forgets the modules imported from BUILD, points the paths that named BUILD (sys.path,
   PYTHONPATH for the runs it launches) at DIR, changes to the project folder in DIR and runs dagster's
   own command line in this process (``python -m dagster api grpc ...`` with the arguments after
   ``--``), so the code is loaded afresh from ``current`` while dagster itself is already imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import shlex
import sys
from pathlib import Path

import setproctitle

from dagops.runtime.sync.loadcheck import _one_line, check
from dagops.runtime.sync.target import resolve


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _forget_tree(tree: str) -> None:
    """Drop modules loaded from ``tree`` (and the tree from sys.path) so they load again from ``current``."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        # Namespace packages have no file, only search locations.
        locations = list(getattr(module, "__path__", None) or []) if not path else [path]
        if any(_under(str(p), tree) for p in locations):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not _under(p, tree)]
    for key in [k for k in sys.path_importer_cache if _under(k, tree)]:
        del sys.path_importer_cache[key]
    importlib.invalidate_caches()


def _moved(paths: list[str], tree: str, new: str) -> list[str]:
    """``paths`` with every entry under ``tree`` pointing at the same place under ``new``."""
    return [new + p[len(tree.rstrip("/")) :] if _under(p, tree) else p for p in paths]


# Modules `python -m dagster api grpc` imports before it serves (found with `python -X importtime`);
# importing them while the agent swaps `current` takes about 2 s off the restart (the last five about
# 0.3 s: loading code through reconstruct.py imports the storage layer, structlog and rich).
# Only a warm-up: a name that moves just makes it slower.
_CLI_MODULES = (
    "dagster._cli",
    "dagster._cli.api",
    "dagster._grpc.server",
    "dagster._core.definitions.reconstruct",
    "dagster._core.types.loadable_target_origin",
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


def standby(result_fd: int) -> int:
    """Import what a check and a code server need, say READY on ``result_fd``, then wait for the job
    (module docstring; the job's arguments name the same descriptor)."""
    _preload_cli()
    os.write(result_fd, b"READY\n")
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    job = json.loads(line)
    argv, env, cwd = list(job["argv"]), dict(job["env"]), str(job["cwd"])
    # From here on this is the job's process: `ps` (and /proc/PID/cmdline) shows its command, not --standby.
    setproctitle.setproctitle(shlex.join([sys.executable, "-m", "dagops.runtime.sync.warmserver", *argv]))
    os.chdir(cwd)
    startup = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ.clear()
    os.environ.update(env)
    # As `python -m` started in ``cwd`` with this PYTHONPATH: the folder first, then the entries this
    # process did not start with (the tree's own folders; the agent checked that the rest is the same).
    added = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in startup]
    sys.path[0] = cwd
    sys.path[1:1] = [os.path.abspath(p) for p in added]
    importlib.invalidate_caches()
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:2] == ["--standby", "--result-fd"] and len(args) == 3:
        return standby(int(args[2]))
    if "--" not in args:
        print("usage: python -m dagops.runtime.sync.warmserver OPTIONS -- DAGSTER_ARGS", file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m dagops.runtime.sync.warmserver")
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--tree", required=True)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--chdir", required=True)
    parser.add_argument("--location", default=None)
    opts = parser.parse_args(args[:split])
    dagster_args = args[split + 1 :]
    tree = str(Path(opts.tree).absolute())
    with os.fdopen(opts.result_fd, "w") as result:
        try:
            summary = check(Path(tree), opts.entry, opts.location)
        except BaseException as exc:  # anything the user's code raises
            result.write(f"FAIL {_one_line(exc, Path(tree))}\n")
            return 1
        result.write(f"OK {summary}\n")
    _preload_cli()
    if sys.stdin.readline().strip() != "serve":
        return 0
    _forget_tree(tree)
    current = str(Path(opts.chdir).absolute())
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(_moved(paths, tree, current))
    sys.path[:0] = [p for p in _moved(paths, tree, current) if _under(p, current) and p not in sys.path]
    os.chdir(resolve(Path(current), opts.entry).project_dir)
    sys.argv = ["dagster", *dagster_args]
    runpy.run_module("dagster", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
