"""Test runner: `nox` runs the default set (what CI runs); `nox -l` lists every session."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "unit",
    "integration",
    "containers",
    "containers_arm64",
    "infra",
    "checkov",
    "security",
]

PYTHON = "3.11"
# checkov pins an old `packaging`, so it gets a session (and a virtualenv) of its own.
CHECKOV = "checkov==3.3.30"


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the project and the given dependency groups into the session's venv, from uv.lock."""
    # Precompiled bytecode: every Dagster process imports ~800 modules, 2-3 s slower per start where
    # PYTHONDONTWRITEBYTECODE is set (as on CI machines); the image compiles too.
    args = ["uv", "sync", "--frozen", "--no-default-groups", "--compile-bytecode"]
    for group in groups:
        args += ["--group", group]
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})


def _pytest(session: nox.Session, *paths: str, workers: int = 0) -> None:
    """Run pytest on ``paths`` (or on the paths the session's posargs name) with fake AWS credentials.

    ``workers`` > 0 spreads the test files over that many pytest-xdist processes (a file's tests stay
    in one process, so module-scoped fixtures such as an emulated apply are made once).
    """
    # The lint group brings actionlint, zizmor and hadolint, which some tests call.
    _sync(session, "test", "lint")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers else []
    # Arguments that name no test path (`nox -s unit -- -k sync`) narrow the session's own paths.
    words = [arg for arg in session.posargs if not arg.startswith("-")]
    names_a_path = any(Path(word.split("::")[0]).exists() for word in words)
    args = session.posargs if names_a_path else [*session.posargs, *paths]
    session.run("pytest", *parallel, *args, env=env)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: style, common bugs and formatting; lint-imports: the runtime/operator boundary."""
    _sync(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Mypy over src/dagops, tasks.py and noxfile.py."""
    _sync(session, "lint", "test")
    session.run("mypy")


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit tests: hermetic, moto for AWS, no network beyond loopback; two pytest-xdist workers."""
    _pytest(session, "tests/unit", "code_locations", workers=2)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Integration: real Postgres, moto server, real webserver, daemon, code servers and sync agents, and
    the tests that run invoke, Dagster or pytest as real processes; two workers (free ports and temporary
    folders throughout; a file's tests, and so its stack, stay in one worker)."""
    _pytest(session, "tests/integration", workers=2)


@nox.session(python=PYTHON)
def containers(session: nox.Session) -> None:
    """The built image in a Docker engine: non-root, each role proves itself (skips without an engine,
    fails instead when DAGOPS_REQUIRE_DOCKER=1)."""
    _pytest(session, "-m", "not arm64", "tests/containers")


@nox.session(python=PYTHON)
def containers_arm64(session: nox.Session) -> None:
    """The image built for linux/arm64 (Fargate), under qemu on other hosts: imports dagster, runs its
    entrypoint."""
    _pytest(session, "-m", "arm64", "tests/containers")


@nox.session(python=PYTHON)
def infra(session: nox.Session) -> None:
    """OpenTofu: fmt and validate every module and root, then apply each live root against moto."""
    # Mostly waiting on the provider's polling of the emulator, so more workers than cores pay off.
    _pytest(session, "tests/infra", workers=3)


@nox.session(python=PYTHON)
def checkov(session: nox.Session) -> None:
    """Checkov over modules/ and live/: no unsuppressed failures."""
    session.install(CHECKOV)
    session.run(
        "checkov",
        "--quiet",
        "--compact",
        # No Prisma Cloud guidelines download: not needed, and offline it prints a traceback.
        "--skip-download",
        "--framework",
        "terraform",
        "--directory",
        "modules",
        "--directory",
        "live",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def security(session: nox.Session) -> None:
    """hadolint over the image, actionlint and zizmor over the workflows."""
    _sync(session, "lint")
    session.run("hadolint", "images/Dockerfile")
    workflows = sorted(str(p) for p in Path(".github/workflows").glob("*.y*ml"))
    session.run("actionlint", *workflows)
    session.run("zizmor", "--offline", ".github/workflows")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: each figure printed beside its budget (slow; not part of the default run)."""
    _sync(session, "test")
    session.run("python", "-m", "benchmarks", *session.posargs)
