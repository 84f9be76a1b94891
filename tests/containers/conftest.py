"""Fixtures of the tests on the built image (defined in harness.py, which the tests also import)."""

from typing import Any

from harness import (
    FIGURES,
    code_location,
    engine,
    figures,
    native_image,
    postgres,
    s3_endpoint,
    webserver_url,
)

__all__ = [
    "code_location",
    "engine",
    "figures",
    "native_image",
    "postgres",
    "s3_endpoint",
    "webserver_url",
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_line("measured figures:")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"  {key}: {value}")
