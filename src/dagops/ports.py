"""TCP ports on this machine: pick a free one, ask whether one is taken, probe a listener."""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

from dagops.errors import DagopsError


def connect_host(host: str) -> str:
    """Where to connect for a listen address (0.0.0.0 and "" listen everywhere: connect to loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a listen address


LOWEST = 15000  # below: ports that well-known services tend to use
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")  # Linux: where outgoing connections take theirs


def _ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections (32768 where it cannot be read)."""
    try:
        return int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` consecutive TCP ports that nobody uses right now, below the kernel's ephemeral range.

    A port the kernel picks (bind to 0) lies inside that range, so the ports after it can be taken at any
    moment as the source port of an outgoing connection (a client of Postgres or S3, say); a stack that
    serves on "base + i" must pick its block where no connection lands.
    """
    top = max(LOWEST + count, _ephemeral_start()) - count
    for _ in range(200):
        base = random.randrange(LOWEST, top)  # noqa: S311 - a port number, not a secret
        if not any(port_in_use(host, port) for port in range(base, base + count)):
            return list(range(base, base + count))
    raise DagopsError(f"No {count} consecutive free TCP ports on {host} below {top + count}.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now, where outgoing connections do not take theirs."""
    return free_ports(1, host)[0]


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
