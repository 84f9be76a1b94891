"""While `invoke dev` runs, a saved file of one of the project's own code locations is published at once.

The watcher waits on inotify (``watchfiles``, Rust ``notify``): nothing scans the tree while nobody edits.
A burst of writes (an editor's save, a ``git checkout``) arrives as one batch: ``watchfiles`` yields once
no new change came for ``STEP_MS`` (or after ``DEBOUNCE_MS`` of continuous change); changes made while a
publish and its wait are under way make the next batch, so a burst publishes once, at most twice.

Each batch publishes the locations it touched through the same path as `invoke dags.deploy`
(``dagops.publish.publish_location``: changed files only, manifest last), wakes their agents, waits for
their reports (``dagops.runtime.sync.report``) and says one line per publish: the revision served, or
the import error's last line while the last good code keeps serving. The last line of each location is kept in
``<run-dir>/watch.json`` for `invoke dags.status`.

Only the project's own locations are watched (``source`` under code_locations/); external repositories
under repos/ stay at their recorded commits. The registry file itself is the registry watcher's
(``dagops.operator.registry_watch``; told at once through ``on_registry``): the watcher reads the registry
afresh for each batch, so a location added there is followed from its first save.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dagops import registry
from dagops.errors import DagopsError

STEP_MS = 200
DEBOUNCE_MS = 1000
# An empty batch after this long idle: the first one marks the watch as in place (see ``run``).
CATCH_UP_MS = 1000
RETRY_SECONDS = 0.5
WATCH_FILE = "watch.json"
OUTCOME_TIMEOUT = 120.0
Say = Callable[[str], None]


def own_locations(root: Path) -> list[registry.Location]:
    """Registered locations whose source is a folder of code_locations/ (not an external repository)."""
    base = (root / "code_locations").resolve()
    found = []
    for loc in registry.load(root):
        path = loc.path(root).resolve()
        if loc.url is None and path != base and path.is_relative_to(base):
            found.append(loc)
    return found


def touched(root: Path, paths: Iterable[str]) -> list[registry.Location]:
    """The own locations that contain any of ``paths`` (registry order)."""
    resolved = [Path(p).resolve() for p in paths]
    return [
        loc
        for loc in own_locations(root)
        if any(p == loc.path(root).resolve() or p.is_relative_to(loc.path(root).resolve()) for p in resolved)
    ]


def _saved_after(folder: Path, since: float) -> bool:
    """True when a source file under ``folder`` (not bytecode) was modified after ``since``."""
    for path in folder.rglob("*"):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime > since:
                return True
    return False


def record(run_dir: Path, location: str, line: str) -> None:
    """Keep ``line`` as the last publish of ``location`` in ``<run_dir>/watch.json`` (atomically)."""
    path = run_dir / WATCH_FILE
    data = read_records(run_dir)
    data[location] = {"line": line, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".watch.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_records(run_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((run_dir / WATCH_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


class CodeWatcher:
    """Publishes own locations when their files change; ``run`` blocks until ``stop_event`` is set."""

    def __init__(
        self,
        *,
        root: Path,
        run_dir: Path,
        publish: Callable[[registry.Location], Any],
        outcome: Callable[[str, str], str] | None,
        say: Say,
        on_registry: Callable[[], None] | None = None,
        since: float | None = None,
    ) -> None:
        self.root = root
        self.run_dir = run_dir
        self.publish = publish
        self.outcome = outcome
        self.say = say
        self.on_registry = on_registry
        self.since = since  # epoch seconds: files saved after it and before the watch began are published
        self.publishes = 0  # publishes that wrote a new manifest
        self.known: dict[str, str] = {}  # location -> the revision last reported (or found at the catch-up)

    def handle(self, paths: Iterable[str], catch_up: bool = False) -> list[str]:
        """Publish every own location among ``paths``; the lines said (one per publish).

        A save whose content is already published says nothing when its revision was reported before
        (or ``catch_up``: files saved before the watch, published by the stack itself); otherwise the
        revision's outcome is reported all the same: another publisher (the compose stack's one-shot
        publisher, a `dags.deploy` in another terminal) may have written it first.
        """
        paths = list(paths)
        if self.on_registry is not None and str(registry.registry_path(self.root)) in paths:
            self.on_registry()  # the registry watcher applies it now rather than at its next look
        try:
            locations = touched(self.root, paths)
        except DagopsError as exc:
            line = f"code: not published ({exc})"
            self.say(line)
            return [line]
        lines = []
        for loc in locations:
            started = time.monotonic()
            try:
                result = self._publish_settled(loc)
            except DagopsError as exc:
                line = f"code {loc.name}: not published: {exc}"
            else:
                if result is None:  # a publisher that reports nothing: say that it ran
                    line = f"code {loc.name}: published; its agent serves it after its next poll"
                    self.say(line)
                    record(self.run_dir, loc.name, line)
                    lines.append(line)
                    continue
                written = bool(getattr(result, "manifest_written", False) or getattr(result, "deleted", 0))
                known, self.known[loc.name] = self.known.get(loc.name), result.revision
                if not written and (catch_up or result.revision == known):
                    continue  # saved with the same content: nothing new to publish or to report
                self.publishes += written
                what = f"{result.uploaded} uploaded, {result.deleted} deleted"
                if self.outcome is None:
                    line = f"code {loc.name}: published {result.revision[:12]} ({what})"
                else:
                    told = self.outcome(loc.name, result.revision)
                    line = (
                        f"code {loc.name}: {told} [{what}; {time.monotonic() - started:.1f} s after the save]"
                    )
            self.say(line)
            record(self.run_dir, loc.name, line)
            lines.append(line)
        return lines

    def _publish_settled(self, loc: registry.Location) -> Any:
        """Publish; once more after a quiet moment when it fails (e.g. a file changed while it was read:
        the editor was still writing). A second failure is the one reported."""
        try:
            return self.publish(loc)
        except DagopsError:
            time.sleep(RETRY_SECONDS)
            return self.publish(loc)

    def saved_since(self) -> list[str]:
        """Files of own locations modified after ``since`` (one walk, once: at the start of the watch)."""
        if self.since is None:
            return []
        found = []
        with contextlib.suppress(DagopsError):
            for loc in own_locations(self.root):
                for path in loc.path(self.root).rglob("*"):
                    with contextlib.suppress(OSError):
                        if path.is_file() and path.stat().st_mtime >= self.since:
                            found.append(str(path))
        return found

    def run(self, stop_event: threading.Event) -> None:
        from watchfiles import watch

        folder = self.root / "code_locations"
        self.say(f"watching {folder} for saved changes (turn off: dev.watch false or --no-watch)")
        caught_up = False
        for changes in watch(
            folder,
            stop_event=stop_event,
            step=STEP_MS,
            debounce=DEBOUNCE_MS,
            rust_timeout=CATCH_UP_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            paths = [path for _change, path in changes]
            catch_up = not caught_up
            if catch_up:
                # The inotify watch is in place from the first yield: publish what was saved before it
                # (after ``since``, the stack's own publish); a location nobody touched is left alone.
                caught_up = True
                paths += self.saved_since()
            if not paths:
                continue
            try:
                self.handle(paths, catch_up=catch_up)
            except Exception as exc:  # keep watching: one failed publish must not end the stack's watch
                self.say(f"code: publish failed: {' '.join(str(exc).split())[:300]}")

    def start(self, stop_event: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop_event,), name="code-watch", daemon=True)
        thread.start()
        return thread


def for_stack(stack: Any, on_registry: Callable[[], None] | None = None) -> CodeWatcher:
    """A watcher wired to the running dev stack (``devstack.stack.Stack``): local S3, agents, console."""
    from dagops.operator.devstack import s3 as local_s3
    from dagops.operator.devstack.control import wake_agents

    cfg = stack.config
    return for_bucket(
        local_s3.client(cfg.s3_endpoint),
        cfg.bucket,
        root=cfg.root,
        run_dir=cfg.run_dir,
        say=stack.say,
        wake=lambda names: wake_agents(cfg, names),
        on_registry=on_registry,
        since=float(stack.state.get("started_at") or time.time()),
    )


def for_bucket(
    client: Any,
    bucket: str,
    *,
    root: Path,
    run_dir: Path,
    say: Say,
    wake: Callable[[list[str]], object] | None = None,
    on_registry: Callable[[], None] | None = None,
    since: float | None = None,
) -> CodeWatcher:
    """A watcher that publishes to ``bucket`` as `invoke dags.deploy` does and waits for the agents' reports.

    ``wake(names)`` nudges the agents of the embedded stack; the compose stack's agents poll by themselves.
    """
    from dagops.publish import publish_location
    from dagops.runtime.sync import report

    published_at: dict[str, float] = {}

    def publish(loc: registry.Location) -> Any:
        published_at[loc.name] = time.time()
        result = publish_location(client, bucket, loc.name, loc.path(root), loc.entry)
        if result.manifest_written and wake is not None:
            wake([loc.name])
        return result

    def newer_saves(location: str) -> bool:
        """A file of ``location`` saved after its publish began: that publish will not be the one served."""
        since = published_at.get(location, time.time())
        loc = next((x for x in own_locations(root) if x.name == location), None)
        return loc is not None and _saved_after(loc.path(root), since)

    def outcome(location: str, revision: str) -> str:
        (found,) = report.wait_served(
            client, bucket, {location: revision}, OUTCOME_TIMEOUT, superseded=newer_saves
        )
        return found.line().removeprefix(f"{location}: ")

    return CodeWatcher(
        root=root,
        run_dir=run_dir,
        publish=publish,
        outcome=outcome,
        say=say,
        on_registry=on_registry,
        since=since,
    )
