"""Dagster schedules whose ticks fall outside an environment's office hours (they do not fire while the
environment is stopped): ``invoke cost.offhours --env dev``, and a section of ``invoke cost``.

Each code location of the registry is imported in a child process the way the code server imports it
(``dagops.runtime.sync.loadcheck.load_definitions``), its schedules' cron strings are expanded over one week
with
Dagster's own tick iterator, and every tick is compared with the active days and hours in the office
hours' time zone. The child prints JSON; a location that does not import is reported, not fatal.

    python -m dagops.operator.cost.offhours TREE ENTRY '{"days": [...], "start": "08:00", ...}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.operator.cost.config import ActiveHours
from dagops.paths import repo_root

PROBE_TIMEOUT = 120.0
WEEK_S = 7 * 24 * 3600
SAMPLE_WEEK_MONDAY = "2026-01-05"  # a Monday; daylight saving differs by hemisphere, not by week here


@dataclass(frozen=True)
class OffHoursSchedule:
    location: str
    name: str
    cron: str
    timezone: str
    ticks_per_week: int
    outside: tuple[str, ...]  # the outside ticks, as local times of the office hours ("Sat 06:00")


@dataclass(frozen=True)
class OffHours:
    hours: ActiveHours
    schedules: tuple[OffHoursSchedule, ...]
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hours": self.hours.describe(),
            "schedules": [asdict(s) for s in self.schedules],
            "problems": list(self.problems),
        }

    def lines(self) -> list[str]:
        hours = self.hours.describe()
        if not self.schedules and not self.problems:
            return [f"Dagster schedules: every tick falls inside the office hours ({hours})."]
        out = [f"Dagster schedules with ticks outside the office hours ({hours}); they do not fire then:"]
        for s in self.schedules:
            sample = ", ".join(s.outside[:4]) + (" ..." if len(s.outside) > 4 else "")
            out.append(
                f"  - {s.location}/{s.name} ({s.cron}, {s.timezone}): {len(s.outside)} of "
                f"{s.ticks_per_week} ticks a week outside, e.g. {sample}"
            )
        out += [f"  - {problem}" for problem in self.problems]
        return out


def _week_ticks(cron: str, timezone: str, hours: ActiveHours) -> tuple[int, list[str]]:
    """All ticks of ``cron`` over one week, and those outside ``hours`` (local to ``hours.time_zone``)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    # Dagster's own iterator, the one its daemon uses to find ticks (not public API, hence here only).
    from dagster._utils.schedules import cron_string_iterator

    zone = ZoneInfo(hours.time_zone)
    start = datetime.fromisoformat(SAMPLE_WEEK_MONDAY).replace(tzinfo=zone).timestamp()
    ticks, outside = 0, []
    for tick in cron_string_iterator(start, cron, timezone):
        if tick.timestamp() >= start + WEEK_S:
            break
        ticks += 1
        local = tick.astimezone(zone)
        day, hhmm = local.strftime("%a").upper(), local.strftime("%H:%M")
        if day not in hours.days or not (hours.start <= hhmm < hours.stop):
            outside.append(f"{local.strftime('%a')} {hhmm}")
    return ticks, outside


def probe(tree: Path, entry: str, hours: ActiveHours) -> list[dict[str, Any]]:
    """Runs in the child: every schedule of the location and its ticks outside ``hours``."""
    from dagops.runtime.sync.loadcheck import load_definitions

    found: list[dict[str, Any]] = []
    for repository in load_definitions(tree, entry).values():
        for schedule in repository.schedule_defs:
            crons = schedule.cron_schedule
            timezone = schedule.execution_timezone or "UTC"
            for cron in [crons] if isinstance(crons, str) else list(crons):
                ticks, outside = _week_ticks(cron, timezone, hours)
                found.append({"name": schedule.name, "cron": cron, "timezone": timezone,
                              "ticks_per_week": ticks, "outside": outside})  # fmt: skip
    return found


def _hours_json(hours: ActiveHours) -> str:
    return json.dumps({"days": list(hours.days), "start": hours.start, "stop": hours.stop,
                       "time_zone": hours.time_zone})  # fmt: skip


def _run_probe(tree: Path, entry: str, hours: ActiveHours) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-m", "dagops.operator.cost.offhours", str(tree), entry, _hours_json(hours)]
    with tempfile.TemporaryDirectory(prefix="dagops-offhours-") as home:
        env = {**os.environ, "DAGSTER_HOME": home}
        try:
            proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True,
                                  timeout=PROBE_TIMEOUT, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise DagopsError(f"importing {entry} took longer than {PROBE_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        raise DagopsError(lines[-1] if lines else f"exit code {proc.returncode}")
    return list(json.loads(proc.stdout))


def offhours(hours: ActiveHours, root: Path | None = None) -> OffHours:
    """Every registry location's schedules with ticks outside ``hours``."""
    from dagops import registry

    root = root or repo_root()
    found: list[OffHoursSchedule] = []
    problems: list[str] = []
    try:
        locations = registry.load(root)
    except DagopsError as exc:
        return OffHours(hours, (), (f"no code-location registry: {exc}",))
    for loc in locations:
        tree = loc.path(root)
        if not (tree / loc.entry).is_file():
            problems.append(
                f"{loc.name}: {loc.entry} is not checked out here ({tree}); its schedules are unread"
            )
            continue
        try:
            result = _run_probe(tree, loc.entry, hours)
        except DagopsError as exc:
            problems.append(f"{loc.name}: its definitions do not load ({exc}); its schedules are unread")
            continue
        found += [
            OffHoursSchedule(
                loc.name, s["name"], s["cron"], s["timezone"], s["ticks_per_week"], tuple(s["outside"])
            )
            for s in result
            if s["outside"]
        ]
    return OffHours(hours, tuple(found), tuple(problems))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m dagops.operator.cost.offhours TREE ENTRY HOURS_JSON", file=sys.stderr)
        return 2
    from dagops.runtime.sync.loadcheck import _one_line

    tree = Path(args[0]).absolute()
    try:
        raw = json.loads(args[2])
        hours = ActiveHours(True, tuple(raw["days"]), raw["start"], raw["stop"], raw["time_zone"])
        print(json.dumps(probe(tree, args[1], hours)), flush=True)
    except BaseException as exc:  # anything the user's code raises, SystemExit included
        print(_one_line(exc, tree), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
