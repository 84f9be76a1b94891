"""``python -m dagops.operator.devstack up --config JSON``: the background form of `invoke dev --detach`."""

from __future__ import annotations

import argparse
import json
import sys

from dagops.errors import DagopsError
from dagops.operator.devstack.config import DevConfig
from dagops.operator.devstack.control import up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagops.operator.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="run the embedded local stack until SIGTERM")
    start.add_argument("--config", default="{}", help="settings as JSON (keys of invoke.yaml's dev: mapping)")
    start.add_argument("--quiet", action="store_true", help="component output to the log files only")
    args = parser.parse_args(argv)
    try:
        config = DevConfig.resolve(json.loads(args.config), environ={})
        up(config, console=None if args.quiet else sys.stdout)
    except DagopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
