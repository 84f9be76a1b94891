"""The code-location registry: one file that the local stack, the workspace, dags.deploy and tofu all read.

``code_locations/locations.yaml`` lists every location: the project's own (``source`` under
code_locations/) and external git repositories added with ``invoke repo.add`` (``source`` under repos/,
plus ``url``, ``ref`` and ``commit``). ``entry`` is the Python file, relative to the location root, that
defines the location's ``Definitions``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.paths import repo_root

REGISTRY_FILE = Path("code_locations") / "locations.yaml"
HEADER = (
    "# Code locations: read by `invoke dev`, `invoke dags.deploy`, the workspace and the tofu roots.\n"
    "# Edit with `invoke repo.add/remove` for external repositories; own locations live in code_locations/.\n"
)


@dataclass(frozen=True)
class Location:
    name: str
    source: str
    entry: str = "definitions.py"
    url: str | None = None
    ref: str | None = None
    commit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, root: Path | None = None) -> Path:
        return (root or repo_root()) / self.source

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        data.update(self.extra)
        return data


def registry_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / REGISTRY_FILE


def load(root: Path | None = None) -> list[Location]:
    """All registered code locations, in file order."""
    path = registry_path(root)
    if not path.is_file():
        raise DagopsError(f"The code-location registry {path} is missing.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DagopsError(f"The code-location registry {path} is not valid YAML: {exc}.") from None
    locations = []
    known = {"name", "source", "entry", "url", "ref", "commit"}
    for item in data.get("locations") or []:
        if not isinstance(item, dict) or "name" not in item or "source" not in item:
            raise DagopsError(f"Every entry of {path} needs a name and a source.")
        validate_location_name(item["name"])
        extra = {k: v for k, v in item.items() if k not in known}
        locations.append(Location(**{k: v for k, v in item.items() if k in known}, extra=extra))
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise DagopsError(f"The registry {path} lists a code location twice.")
    return locations


def get(name: str, root: Path | None = None) -> Location:
    for loc in load(root):
        if loc.name == name:
            return loc
    raise DagopsError(f"No code location named {name!r} is registered.")


def save(locations: list[Location], root: Path | None = None) -> None:
    """Write the registry atomically (a reader sees the old file or the new one, never half)."""
    path = registry_path(root)
    body = HEADER + yaml.safe_dump({"locations": [loc.to_dict() for loc in locations]}, sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".locations.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
