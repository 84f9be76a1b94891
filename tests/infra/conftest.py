"""Fixtures of the OpenTofu tests (helpers in tfharness.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tfharness import (
    ACCOUNT_VAR,
    LOCATIONS,
    Applied,
    Tofu,
    copy_tree,
    find_binary,
    make_tofu,
    start_moto,
    write_override,
)


@pytest.fixture(scope="session")
def tofu(tmp_path_factory: pytest.TempPathFactory) -> Tofu:
    binary = find_binary()
    if binary is None:
        pytest.skip("neither tofu nor terraform is on PATH")
    return make_tofu(binary, tmp_path_factory.mktemp("tfhome"))


@pytest.fixture(scope="session")
def dev_applied(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    """live/dev as committed (office hours on, two code locations) applied once for the session."""
    base = tmp_path_factory.mktemp("dev-applied")
    root = copy_tree(base, locations=LOCATIONS) / "live" / "dev"
    moto = start_moto()
    applied = False
    try:
        write_override(root, moto.endpoint, base / "dev.tfstate")
        tofu.run("init", "-input=false", "-no-color", cwd=root)
        tofu.run("apply", "-input=false", "-no-color", "-auto-approve", ACCOUNT_VAR, cwd=root)
        applied = True
        raw = json.loads(tofu.run("output", "-json", cwd=root).stdout)
        yield Applied(root, moto, {k: v["value"] for k, v in raw.items()})
    finally:
        if applied:
            tofu.run(
                "destroy", "-input=false", "-no-color", "-auto-approve", ACCOUNT_VAR, cwd=root, check=False
            )
        moto.stop()
