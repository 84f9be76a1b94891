"""CloudWatch logs of an environment's services, code locations and runs, merged by time."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.operator.aws import Deployment, Echo, aws_boundary

_SINCE = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str) -> int:
    """``30s``, ``10m``, ``2h`` or ``1d`` -> seconds."""
    match = _SINCE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise DagopsError(f"Invalid --since {value!r}: use a number and a unit, such as 30s, 10m, 2h or 1d.")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def log_groups(dep: Deployment, service: str | None = None, location: str | None = None) -> dict[str, str]:
    """The log groups to read: one service's, one code location's, or (neither given) all of them."""
    groups = dep.mapping("log_group_names")
    if service and location:
        raise DagopsError("Give --service or --location, not both.")
    if location:
        key = f"code-{validate_location_name(location)}"
        if key not in groups:
            known = sorted(k[5:] for k in groups if k.startswith("code-"))
            raise DagopsError(
                f"Environment {dep.env!r} has no code location {location!r} "
                f"(deployed: {', '.join(known) or 'none'})."
            )
        return {key: groups[key]}
    if service:
        if service not in groups:
            raise DagopsError(
                f"Unknown service {service!r} in environment {dep.env!r}: "
                f"expected one of {', '.join(sorted(groups))}."
            )
        return {service: groups[service]}
    return groups


def _events(dep: Deployment, group: str, start_ms: int) -> Iterator[dict[str, Any]]:
    logs = dep.client("logs")
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            raise DagopsError(
                f"Log group {group} does not exist; apply the tofu root of {dep.env!r} first."
            ) from None
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token or not page.get("events"):
            return
        kwargs["nextToken"] = token


def format_event(key: str, event: dict[str, Any]) -> str:
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} {key} {event['message'].rstrip()}"


@aws_boundary
def show(
    dep: Deployment,
    service: str | None = None,
    location: str | None = None,
    since: str = "10m",
    follow: bool = False,
    echo: Echo = print,
    poll: float = 2.0,
    now_ms: int | None = None,
) -> int:
    """Print the chosen log groups' events since ``since`` ago, oldest first; ``follow`` keeps polling.

    Returns the number of events printed (following ends with Ctrl-C).
    """
    groups = log_groups(dep, service, location)
    start = (now_ms if now_ms is not None else int(time.time() * 1000)) - parse_since(since) * 1000
    seen: set[str] = set()
    printed = 0
    cursor = {key: start for key in groups}
    while True:
        batch: list[tuple[int, str, dict[str, Any]]] = []
        for key, group in groups.items():
            for event in _events(dep, group, cursor[key]):
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                batch.append((event["timestamp"], key, event))
                cursor[key] = max(cursor[key], event["timestamp"])
        for _, key, event in sorted(batch, key=lambda item: (item[0], item[1])):
            echo(format_event(key, event))
        printed += len(batch)
        if not follow:
            return printed
        time.sleep(poll)
