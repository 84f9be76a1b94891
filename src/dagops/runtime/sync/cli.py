"""``python -m dagops.runtime.sync``: the sync agent's command line.

    python -m dagops.runtime.sync run --location NAME [--code-dir DIR] [--interval SECONDS] [--grpc-host H]
                              [--grpc-port P] [--webserver-url URL] [--no-code-server] [--queue-url URL]
                              [--max-rss-mb MB]
    python -m dagops.runtime.sync once --location NAME [--code-dir DIR]
    python -m dagops.runtime.sync status --location NAME [--code-dir DIR] [--json]
        (exit 0: a release is served)

Each option stands for a variable of ``dagops.settings.SyncSettings`` (its name, type, default and meaning
are declared there): ``DAGOPS_LOCATION``, ``DAGOPS_CODE_DIR``, ``DAGOPS_SYNC_INTERVAL``, ``DAGOPS_GRPC_HOST``,
``DAGOPS_GRPC_PORT``, ``DAGOPS_WEBSERVER_URL``, ``DAGOPS_SYNC_QUEUE_URL``, ``DAGOPS_CODE_SERVER_MAX_RSS_MB``;
the option wins. ``DAGSTER_S3_BUCKET`` is required by run and once. A bad value is one line on stderr and
exit 1. What ``run`` does is dagops.runtime.sync.agent's story.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from dagops import settings
from dagops.errors import DagopsError
from dagops.names import validate_location_name
from dagops.runtime.sync.agent import Agent, Waker, aws_client, make_logger
from dagops.runtime.sync.codeserver import CodeServer, run_container_context
from dagops.runtime.sync.layout import LocationDir
from dagops.runtime.sync.report import DEFAULT_HEARTBEAT, Reporter
from dagops.runtime.sync.status import format_status, read_status
from dagops.runtime.sync.syncer import Syncer

DEFAULT_CODE_DIR = str(settings.SyncSettings.model_fields["code_dir"].default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dagops.runtime.sync", description="S3 code sync agent.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--location", default=None, help="code location (default: $DAGOPS_LOCATION)")
        p.add_argument(
            "--code-dir", default=None, help=f"synced trees ($DAGOPS_CODE_DIR, {DEFAULT_CODE_DIR})"
        )

    run = sub.add_parser("run", help="sync in a loop and supervise the code server")
    common(run)
    run.add_argument(
        "--interval", type=float, default=None, help="poll every N s ($DAGOPS_SYNC_INTERVAL, 60)"
    )
    run.add_argument("--grpc-host", default=None, help="code server listen host ($DAGOPS_GRPC_HOST, 0.0.0.0)")
    run.add_argument("--grpc-port", type=int, default=None, help="code server port ($DAGOPS_GRPC_PORT, 4000)")
    run.add_argument("--webserver-url", default=None, help="reload the location here after a swap")
    run.add_argument("--no-code-server", action="store_true", help="only sync; do not run a code server")
    run.add_argument(
        "--queue-url", default=None, help="SQS queue of this location's S3 events ($DAGOPS_SYNC_QUEUE_URL)"
    )
    run.add_argument(
        "--max-rss-mb",
        type=float,
        default=None,
        help="replace the code server past this RSS ($DAGOPS_CODE_SERVER_MAX_RSS_MB, 0: no limit)",
    )
    once = sub.add_parser("once", help="sync one time and exit 0 when the published revision is in place")
    common(once)
    status = sub.add_parser("status", help="print the agent's status file")
    common(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


OPTIONS = {
    "location": "--location",
    "code_dir": "--code-dir",
    "interval": "--interval",
    "grpc_host": "--grpc-host",
    "grpc_port": "--grpc-port",
    "webserver_url": "--webserver-url",
    "queue_url": "--queue-url",
    "max_rss_mb": "--max-rss-mb",
}


def resolve(args: argparse.Namespace) -> settings.SyncSettings:
    """The agent's settings: the command line's options over the environment, checked (with those of the
    requirements installs it will run, so that a bad one stops it at once)."""
    given = {name: (flag, getattr(args, name, None)) for name, flag in OPTIONS.items()}
    config = settings.load(settings.SyncSettings, given)
    settings.load(settings.RequirementsSettings)
    if not config.location:
        raise DagopsError("No code location given: pass --location NAME or set DAGOPS_LOCATION.")
    validate_location_name(config.location)
    return config


def max_rss_mb(given: float | None) -> float:
    """The code server's memory limit in MB: ``--max-rss-mb``, else its variable, else 0 (no limit)."""
    return settings.load(settings.SyncSettings, {"max_rss_mb": ("--max-rss-mb", given)}).max_rss_mb


def _status(config: settings.SyncSettings, as_json: bool) -> int:
    location, code_dir = config.location or "", config.code_dir
    status = read_status(LocationDir(code_dir, location).root)
    if status is None:
        raise DagopsError(f"No status for code location {location!r} under {code_dir} (no agent ran there).")
    print(json.dumps(asdict(status), indent=1) if as_json else format_status(status), flush=True)
    # Exit 0 while a release is served by a code server that is not failing: usable as a container
    # health check (a rejected upload is an error to show, not a reason to kill the container).
    healthy = status.revision is not None and not (status.code_server or "").startswith("failing")
    return 0 if healthy else 1


def _code_server(config: settings.SyncSettings, syncer: Syncer, log: Any) -> CodeServer:
    """The location's code server, whose warm process also runs the syncer's import checks."""
    server = CodeServer(
        syncer.location,
        syncer.layout.root,
        config.grpc_host,
        config.grpc_port,
        log,
        container_context=run_container_context(),  # this location's run role, when tofu set one
        keep_standby=config.standby,
    )
    timeout = syncer.check_timeout
    syncer.checker = lambda tree, entry, env: server.warm_check(tree, entry, timeout, env)
    return server


def _run(config: settings.SyncSettings, bucket: str, syncer: Syncer, s3: Any, no_code_server: bool) -> int:
    location, log = syncer.location, syncer.log
    code_server = None if no_code_server else _code_server(config, syncer, log)
    waker: Waker | None = None
    if config.queue_url:
        from dagops.runtime.sync.notify import SqsWaker

        waker = SqsWaker(aws_client("sqs"), config.queue_url, location, log).start()
    reporter = Reporter(s3, bucket, location, heartbeat=max(DEFAULT_HEARTBEAT, config.interval), log=log)
    agent = Agent(
        syncer,
        config.interval,
        code_server,
        config.webserver_url,
        waker,
        reporter,
        max_rss_mb=config.max_rss_mb,
    )
    agent.install_signal_handlers()
    log(
        f"watching s3://{bucket}/{settings.location_prefix(location)} every {config.interval:g}s "
        f"into {syncer.layout.root}"
    )
    return agent.run()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "status":
            bucket = settings.bucket()  # before anything else: fail fast, one line
        config = resolve(args)
        if args.command == "status":
            return _status(config, args.json)
        location = config.location or ""
        log = make_logger(location)
        s3 = aws_client("s3")
        syncer = Syncer(s3, bucket, location, config.code_dir, log=log)
        if args.command == "once":
            return Agent(syncer, interval=1.0).once()
        return _run(config, bucket, syncer, s3, args.no_code_server)
    except DagopsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
