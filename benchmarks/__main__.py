"""``python -m benchmarks [--only NAME,...]``: run the benchmarks, print the table, write results.json."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import ERROR, FAIL, Row, reproduce


def _cost(args: argparse.Namespace) -> list[Row]:
    from benchmarks.costs import cost

    rows, tables = cost()
    args.extra_text.extend(tables)
    return rows


def _cli(args: argparse.Namespace) -> list[Row]:
    from benchmarks.cli import cli

    return cli()


def _watch(args: argparse.Namespace) -> list[Row]:
    from benchmarks.watch import watch

    return watch(changes=args.changes)


def _idle(args: argparse.Namespace) -> list[Row]:
    from benchmarks.s3sync import idle_sync

    return idle_sync()


def _deploy(args: argparse.Namespace) -> list[Row]:
    from benchmarks.s3sync import deploy

    return deploy()


def _latency(args: argparse.Namespace) -> list[Row]:
    from benchmarks.stack import latency

    return latency(changes=args.changes)


def _startup(args: argparse.Namespace) -> list[Row]:
    from benchmarks.stack import startup

    return startup()


def _memory(args: argparse.Namespace) -> list[Row]:
    from benchmarks.stack import memory

    return memory(runs=args.runs or 200, time_budget_s=args.memory_seconds)


def _soak(args: argparse.Namespace) -> list[Row]:
    from benchmarks.soak import SOAK_RUNS, soak

    rows, text = soak(
        runs=args.runs or SOAK_RUNS, seconds=args.soak_seconds, code_server_limit_mb=args.soak_code_server_mb
    )
    args.extra_text.append(text)
    return rows


def _cloud(args: argparse.Namespace) -> list[Row]:
    from benchmarks.cloudshape import CHANGES, cloud_events

    return cloud_events(changes=max(args.changes, CHANGES))


# Quick ones first; the stack benchmarks each start a whole local stack.
BENCHMARKS: dict[str, tuple[str, Callable[[argparse.Namespace], list[Row]]]] = {
    "cost": ("6 cost", _cost),
    "cli": ("7 CLI latency", _cli),
    "idle": ("2 idle sync", _idle),
    "deploy": ("5 deploy", _deploy),
    "latency": ("1 change-to-visible", _latency),
    "startup": ("4 start-up", _startup),
    "memory": ("3 stack memory", _memory),
    "watch": ("8 save and see", _watch),
    "soak": ("9 soak", _soak),
    "cloud": ("10 cloud shape events", _cloud),
}


def _table(rows: list[Row]) -> str:
    headers = ("benchmark", "measure", "figure", "budget", "result", "reproduce")
    cells = [(r.bench, r.metric, r.figure, r.budget, r.status, r.command) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    # Keep the table readable in a terminal: the figure column wraps rather than stretching the table.
    widths[2] = min(widths[2], 72)

    def wrap(text: str, width: int) -> list[str]:
        lines, line = [], ""
        for word in text.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        return [*lines, line]

    out = [
        " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    for row in cells:
        figure_lines = wrap(row[2], widths[2])
        for n, fig in enumerate(figure_lines):
            cols = list(row) if n == 0 else ["", "", "", "", "", ""]
            cols[2] = fig
            out.append(" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--changes", type=int, default=10, help="latency: number of changes timed (>= 10)")
    parser.add_argument(
        "--runs", type=int, default=None, help="memory (default 200), soak (default 500): runs"
    )
    parser.add_argument(
        "--memory-seconds", type=float, default=300.0, help="memory: stop launching runs after this long"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=None, help="soak: stop launching runs after this long"
    )
    parser.add_argument(
        "--soak-code-server-mb",
        type=float,
        default=0.0,
        help="soak: the agents replace their code server past this RSS (default 0: no limit)",
    )
    parser.add_argument("--out", default="", help="results file (default .dagops/bench/results.json)")
    args = parser.parse_args(argv)
    args.extra_text = []
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    rows: list[Row] = []
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    for name in sorted(names, key=list(BENCHMARKS).index):
        label, func = BENCHMARKS[name]
        print(f"[bench] {label}: running ...", flush=True)
        t0 = time.monotonic()
        try:
            got = func(args)
        except Exception as exc:
            traceback.print_exc()
            got = [Row(label, "(benchmark could not run)", f"{type(exc).__name__}: {exc}"[:300], "-", ERROR,
                       reproduce(name))]  # fmt: skip
        print(f"[bench] {label}: done in {time.monotonic() - t0:.1f} s", flush=True)
        rows.extend(got)

    print()
    for text in args.extra_text:
        print(text)
        print()
    print(_table(rows))
    errors = sum(r.status == ERROR for r in rows)
    fails = sum(r.status == FAIL for r in rows)
    load_after = os.getloadavg()
    print(
        f"\nhost: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} at the start and "
        f"{load_after[0]:.1f} at the end (other work on the machine slows the stack figures)."
    )
    print(
        f"{len(rows)} figures, {fails} over budget (FAIL), {errors} errors. "
        "A FAIL is a missed budget and does not change the exit code; an ERROR (a benchmark that could "
        "not run) makes it 1."
    )
    from dagops.paths import state_dir

    out = Path(args.out) if args.out else state_dir() / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_start": load_before,
            "load_average_end": load_after,
        },
        "benchmarks": names,
        "rows": [asdict(r) for r in rows],
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(out)
    print(f"results written to {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
