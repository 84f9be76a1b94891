"""Dagster schedules whose ticks fall outside the office hours: real locations imported, real cron ticks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dagops.operator.cost.config import ActiveHours
from dagops.operator.cost.offhours import offhours

REPO = Path(__file__).resolve().parents[2]

DEFINITIONS = """
import dagster as dg

@dg.op
def noop():
    pass

@dg.job
def work():
    noop()

def every(name, cron, tz):
    return dg.ScheduleDefinition(name=name, job=work, cron_schedule=cron, execution_timezone=tz)

nightly = every("nightly", "0 22 * * *", "UTC")
workdays = every("workdays", "30 9 * * 1-5", "UTC")
weekly = every("weekly", "0 12 * * 6", "Asia/Tokyo")
defs = dg.Definitions(jobs=[work], schedules=[nightly, workdays, weekly])
"""


def _root(tmp_path: Path) -> Path:
    (tmp_path / "locs" / "good").mkdir(parents=True)
    (tmp_path / "locs" / "good" / "definitions.py").write_text(DEFINITIONS)
    (tmp_path / "locs" / "broken").mkdir(parents=True)
    (tmp_path / "locs" / "broken" / "definitions.py").write_text("import no_such_module_here\n")
    (tmp_path / "code_locations").mkdir()
    (tmp_path / "code_locations" / "locations.yaml").write_text(
        "locations:\n"
        "- name: good\n  source: locs/good\n  entry: definitions.py\n"
        "- name: broken\n  source: locs/broken\n  entry: definitions.py\n"
        "- name: absent\n  source: repos/absent\n  entry: definitions.py\n"
    )
    return tmp_path


def test_ticks_outside_the_office_hours_are_reported_per_schedule(tmp_path: Path) -> None:
    hours = ActiveHours(True, ("MON", "TUE", "WED", "THU", "FRI"), "08:00", "18:00", "UTC")
    found = offhours(hours, _root(tmp_path))
    by_name = {s.name: s for s in found.schedules}
    # 22:00 every day: all 7 ticks outside. 09:30 on workdays: none (so not listed).
    assert set(by_name) == {"nightly", "weekly"}
    assert by_name["nightly"].ticks_per_week == 7 and len(by_name["nightly"].outside) == 7
    assert by_name["nightly"].outside[0] == "Mon 22:00"
    # Saturday 12:00 in Tokyo is Saturday 03:00 UTC: outside (not an active day).
    assert by_name["weekly"].outside == ("Sat 03:00",) and by_name["weekly"].timezone == "Asia/Tokyo"
    problems = " ".join(found.problems)
    assert "broken: its definitions do not load (ModuleNotFoundError" in problems
    assert "absent: definitions.py is not checked out here" in problems
    text = "\n".join(found.lines())
    assert "good/nightly (0 22 * * *, UTC): 7 of 7 ticks a week outside" in text


def test_the_office_hours_time_zone_moves_the_ticks(tmp_path: Path) -> None:
    # 22:00 UTC is 09:00 the next day in Sydney in January (UTC+11): inside, except Fri and Sat evenings.
    hours = ActiveHours(True, ("MON", "TUE", "WED", "THU", "FRI"), "08:00", "18:00", "Australia/Sydney")
    by_name = {s.name: s for s in offhours(hours, _root(tmp_path)).schedules}
    assert by_name["nightly"].outside == ("Sat 09:00", "Sun 09:00")
    # 09:30 UTC on workdays is 20:30 in Sydney: outside every time.
    assert len(by_name["workdays"].outside) == 5


def test_invoke_cost_offhours_on_the_repository_lists_the_weekend_ticks() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "cost.offhours", "--env", "dev"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # dev's office hours: MON-FRI 08:00-18:00 Australia/Sydney; numbers_daily runs at 06:00 UTC.
    assert "main/numbers_daily (0 6 * * *, UTC): 2 of 7 ticks a week outside, e.g. Sat 17:00, Sun 17:00" in (
        proc.stdout
    )
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), "cost", "--env", "dev", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert [s["name"] for s in data["offhours"]["schedules"]] == ["numbers_daily"]
