"""dagops.webserver, the one GraphQL client of the agent and the operator's tools, against real HTTP."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from dagops import webserver
from dagops.errors import DagopsError


class _Webserver(BaseHTTPRequestHandler):
    """Answers each POST with the next of ``replies`` (status, body); the last one repeats. A GET of
    /server_info answers ``info`` (status, body)."""

    replies: ClassVar[list[tuple[int, bytes]]] = []
    received: ClassVar[list[dict[str, Any]]] = []
    info: ClassVar[tuple[int, bytes]] = (404, b"")

    def do_GET(self) -> None:
        status, reply = self.info if self.path == "/server_info" else (404, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append({"path": self.path, "body": body})
        status, reply = self.replies[min(len(self.received), len(self.replies)) - 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Webserver]]]:
    handler = type("Handler", (_Webserver,), {"replies": [], "received": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


RELOADED = json.dumps(
    {"data": {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry"}}}
).encode()


def test_reload_retries_until_the_webserver_answers(server: tuple[str, Any]) -> None:
    url, handler = server
    handler.replies = [(503, b"starting"), (200, b"not json"), (200, RELOADED)]
    assert webserver.reload_location(url + "/", "main", attempts=5) == "WorkspaceLocationEntry"
    assert len(handler.received) == 3
    assert {r["path"] for r in handler.received} == {"/graphql"}
    assert handler.received[-1]["body"]["variables"] == {"n": "main"}
    assert "reloadRepositoryLocation" in handler.received[-1]["body"]["query"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((500, b"{}"), "answered HTTP 500"),
        ((200, b"[1]"), "answered something that is not a GraphQL reply"),
        (
            (200, b'{"errors": [{"message": "location not found"}]}'),
            "GraphQL error from .*: location not found",
        ),
    ],
)
def test_the_last_failure_is_one_sentence(
    server: tuple[str, Any], reply: tuple[int, bytes], message: str
) -> None:
    url, handler = server
    handler.replies = [reply]
    with pytest.raises(DagopsError, match=message) as caught:
        webserver.reload_location(url, "main", attempts=2)
    assert "\n" not in str(caught.value)
    assert len(handler.received) == 2


def test_no_retry_once_stopping_and_none_when_nothing_answers(server: tuple[str, Any]) -> None:
    url, handler = server
    handler.replies = [(503, b"")]
    with pytest.raises(DagopsError, match="answered HTTP 503"):
        webserver.reload_location(url, "main", attempts=5, should_stop=lambda: True)
    assert len(handler.received) == 1
    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{bound.getsockname()[1]}"
        with pytest.raises(DagopsError, match=rf"^The Dagster webserver at {closed} does not answer \("):
            webserver.query(closed, "{ version }", timeout=2)


def test_the_workspace_locations_and_their_errors(server: tuple[str, Any]) -> None:
    url, handler = server
    workspace = {
        "workspaceOrError": {
            "__typename": "Workspace",
            "locationEntries": [
                {"name": "main", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "Location"}},
                {"name": "bad", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "PythonError",
                                                                               "message": "boom"}},
            ],
        }
    }  # fmt: skip
    handler.replies = [(200, json.dumps({"data": workspace}).encode())]
    assert webserver.locations(url) == {
        "main": {"loadStatus": "LOADED", "error": None},
        "bad": {"loadStatus": "LOADED", "error": "boom"},
    }
    assert handler.received[-1]["body"]["query"] == webserver.LOCATIONS_QUERY
    handler.replies = [(200, json.dumps({"data": {"reloadWorkspace": {"__typename": "Workspace"}}}).encode())]
    assert webserver.reload_workspace(url) == "Workspace"


def test_server_info_is_the_answer_or_none(server: tuple[str, Any]) -> None:
    url, handler = server
    handler.info = (200, json.dumps({"dagster_webserver_version": "1.9.0"}).encode())
    assert webserver.server_info(url) == {"dagster_webserver_version": "1.9.0"}
    handler.info = (200, b"<html>starting</html>")  # not JSON: not answering yet
    assert webserver.server_info(url) is None
    handler.info = (503, b"")
    assert webserver.server_info(url) is None
    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        assert webserver.server_info(f"http://127.0.0.1:{bound.getsockname()[1]}", timeout=2) is None
