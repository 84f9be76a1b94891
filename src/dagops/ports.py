"""TCP ports on this machine: pick a free one, ask whether one is taken, probe a listener."""

from __future__ import annotations

import socket
from collections.abc import Collection

from dagops.errors import DagopsError


def connect_host(host: str) -> str:
    """Where to connect for a listen address (0.0.0.0 and "" listen everywhere: connect to loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a listen address


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (or the port cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def first_free_port(host: str, start: int, taken: Collection[int] = ()) -> int:
    """The lowest port from ``start`` up that is neither in ``taken`` nor bound by anything, else raise."""
    for port in range(start, 65536):
        if port not in taken and not port_in_use(host, port):
            return port
    raise DagopsError(f"No free TCP port on {host} from {start} up.")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def port_refuses(host: str, port: int, timeout: float = 1.0) -> bool:
    """True only when host:port actively refuses connections (nothing listens; a timeout is not that)."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
