"""The local stack follows the registry: a location added or removed there appears in or leaves the UI.

``invoke repo.add`` / ``repo.remove`` (and anything else) only change code_locations/locations.yaml; the
stack's supervisor calls :meth:`RegistryWatcher.poll` about once a second. When the file changed, the
watcher diffs the registered names against the ones served and, for each difference:

- added: publish the location to the local S3 (a no-op when repo.add already did), give it a free gRPC
  port, start its sync agent (which syncs, import-checks and starts its code server);
- removed: stop its sync agent (and with it the code server);

then rewrites workspace.yaml (atomically) and asks the webserver to ``reloadWorkspace``. A new
location enters workspace.yaml only once its code server answers (or after ``PENDING_TIMEOUT``, so a
location that never starts shows its error): the webserver never shows a just-added location as
unreachable while its server starts. A removed location's synced copy (``<code-dir>/<name>``) is
deleted after its agent stops, and any leftover copy before a new agent starts, so a name added again
never serves old code. The stack wires it with :func:`for_stack` or with its own callbacks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagops import registry, workspace
from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.ports import first_free_port, port_open
from dagops.webserver import reload_workspace

if TYPE_CHECKING:
    from dagops.operator.devstack.stack import Stack

PENDING_TIMEOUT = 300.0
Say = Callable[[str], None]


def write_workspace(path: Path, servers: list[tuple[str, str, int]]) -> None:
    """Replace workspace.yaml in one rename (the webserver never reads half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".workspace.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(workspace.render(servers))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RegistryWatcher:
    """Keeps a running stack's code locations equal to the registry's."""

    def __init__(
        self,
        *,
        root: Path,
        host: str,
        servers: list[tuple[str, str, int]],
        workspace_yaml: Path,
        ui_url: str,
        start_agent: Callable[[str, str, int], None],
        stop_agent: Callable[[str], None],
        publish: Callable[[registry.Location], object],
        say: Say,
        on_change: Callable[[list[registry.Location], list[tuple[str, str, int]]], None] | None = None,
        ready: Callable[[str, int], bool] | None = None,
        pending_timeout: float = PENDING_TIMEOUT,
    ) -> None:
        self.root = root
        self.host = host
        self.ports = {name: port for name, _host, port in servers}
        self.workspace_yaml = workspace_yaml
        self.ui_url = ui_url
        self.start_agent = start_agent
        self.stop_agent = stop_agent
        self.publish = publish
        self.say = say
        self.on_change = on_change
        self.path = registry.registry_path(root)
        self.locations: list[registry.Location] = []
        self.stamp = self._stamp()
        self.names = list(self.ports)
        self.wanted = list(self.ports)
        self.pending: dict[str, float] = {}  # added, waiting for its code server: name -> deadline
        self.pending_timeout = pending_timeout
        self.ready = ready or port_open

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def servers(self) -> list[tuple[str, str, int]]:
        return [(name, self.host, self.ports[name]) for name in self.names]

    def poll(self) -> bool:
        """Apply a registry change, and admit added locations whose code server answers; True when the
        workspace changed."""
        self._apply_registry()
        now = time.monotonic()
        for name, deadline in list(self.pending.items()):
            if self.ready(self.host, self.ports[name]) or now >= deadline:
                del self.pending[name]
        names = [name for name in self.wanted if name in self.ports and name not in self.pending]
        if set(names) == set(self.names):
            return False
        self.names = names
        write_workspace(self.workspace_yaml, self.servers())
        if self.on_change:
            self.on_change(self.locations, self.servers())
        try:
            reload_workspace(self.ui_url)
            self.say(f"registry: workspace reloaded ({', '.join(self.names)})")
        except DagopsError as exc:
            self.say(f"registry: the webserver did not reload the workspace: {exc}")
        return True

    def _apply_registry(self) -> None:
        """Start the agents of added locations (pending) and stop those of removed ones."""
        stamp = self._stamp()
        if stamp == self.stamp:
            return
        self.stamp = stamp
        try:
            locations = registry.load(self.root)
        except DagopsError as exc:
            self.say(f"registry: not applied ({exc})")
            return
        self.locations = locations
        self.wanted = [loc.name for loc in locations]
        added = [loc for loc in locations if loc.name not in self.ports]
        removed = [name for name in self.ports if name not in self.wanted]
        for name in removed:
            self.say(f"registry: {name} was removed; stopping its sync agent")
            try:
                self.stop_agent(name)
            except Exception as exc:  # keep going: the workspace must still lose the location
                self.say(f"registry: could not stop the agent of {name}: {exc}")
            del self.ports[name]
            self.pending.pop(name, None)
        for loc in added:
            taken = set(self.ports.values())
            port = first_free_port(self.host, max(taken, default=4000) + 1, taken)
            self.say(f"registry: {loc.name} was added; starting its sync agent (gRPC port {port})")
            try:
                self.publish(loc)
                self.start_agent(loc.name, self.host, port)
            except Exception as exc:
                self.say(f"registry: could not start {loc.name}: {exc}")
                continue
            self.ports[loc.name] = port
            self.pending[loc.name] = time.monotonic() + self.pending_timeout


# ------------------------------------------------------------------------- the embedded stack


def for_stack(stack: Stack) -> RegistryWatcher:
    """A watcher wired to a running :class:`dagops.operator.devstack.stack.Stack` (call after start-up)."""
    cfg = stack.config

    def forget_copy(name: str) -> None:
        """Delete the location's synced releases (never served again under this name)."""
        validate_location_name(name)
        shutil.rmtree(cfg.code_dir / name, ignore_errors=True)

    def stop_agent(name: str) -> None:
        stack.stop_sync_agent(name)
        forget_copy(name)

    def start_agent(name: str, host: str, port: int) -> None:
        forget_copy(name)  # a copy left from an earlier location of that name
        stack.start_sync_agent(name, host, port)

    return RegistryWatcher(
        root=cfg.root,
        host=cfg.host,
        servers=stack.code_servers(),
        workspace_yaml=cfg.dagster_home / "workspace.yaml",
        ui_url=cfg.ui_url,
        start_agent=start_agent,
        stop_agent=stop_agent,
        publish=stack.publish_location,
        say=stack.say,
        on_change=stack.serve,
    )


def wait_for_location(ui_url: str, name: str, *, present: bool, timeout: float = 120.0) -> float:
    """Seconds until ``name`` is LOADED without error in the webserver's workspace (or gone, with
    ``present=False``); raises DagopsError after ``timeout``."""
    from dagops import webserver

    begin = time.monotonic()
    last: Any = None
    while time.monotonic() - begin < timeout:
        try:
            states = webserver.locations(ui_url)
        except DagopsError as exc:
            last = exc
        else:
            state = states.get(name)
            last = state
            if present and state and state["loadStatus"] == "LOADED" and not state["error"]:
                return time.monotonic() - begin
            if not present and state is None:
                return time.monotonic() - begin
        time.sleep(0.2)
    raise DagopsError(
        f"Code location {name!r} did not {'appear' if present else 'disappear'} in {timeout:.0f} s "
        f"(last: {last})."
    )
