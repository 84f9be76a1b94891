"""Per-location Python requirements: installed once per requirements hash, then put on PYTHONPATH.

A code location whose tree holds ``requirements.txt`` (or, without one, a ``pyproject.toml`` with
``[project] dependencies``) gets those packages in a directory of its own, outside the image:

    <cache>/<key>/site/      the packages (``pip install --target`` layout), on the code server's PYTHONPATH
    <cache>/<key>/.complete  written last: a directory without it is never used

``key`` is the sha256 of the requirements file, the interpreter version and every package already
installed in the running environment, so a new image (new dagster) or a changed file installs afresh,
and an unchanged one costs one ``stat``. The install is resolved against the running environment:
every package the image already has is pinned to the image's version (``--constraint``), so a
repository that lists ``dagster`` cannot replace the webserver's version, and a conflict fails the
install with the resolver's message instead of breaking the code server at import time. Copies of
packages the image already has (same version) are removed from the target afterwards, so the
directory holds only what the location adds.

The trade-off against a per-location image: no registry, no image build and no redeploy of the
service when a repository changes its requirements, and identical requirements share one directory;
but the first sync after a change waits for the install (seconds with uv's cache, longer from the
index), the container needs an index (or a mirror) reachable at sync time, and packages with system
libraries the image lacks cannot be installed this way: those repositories need their own image.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

from dagops.errors import DagopsError
from dagops.untrusted import check_requirements, inputs_key, untrusted_env

REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT = "pyproject.toml"
SITE = "site"
COMPLETE = ".complete"
INSTALL_TIMEOUT_VAR = "DAGOPS_REQUIREMENTS_TIMEOUT"
DEFAULT_INSTALL_TIMEOUT = 900


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_file(tree: Path) -> Path | None:
    """The tree's requirements file: requirements.txt, else a pyproject.toml with dependencies."""
    txt = tree / REQUIREMENTS_TXT
    if txt.is_file():
        return txt
    pyproject = tree / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DagopsError(f"{pyproject} is not valid TOML: {exc}.") from None
        if (data.get("project") or {}).get("dependencies"):
            return pyproject
    return None


def base_packages() -> dict[str, str]:
    """Normalized name -> version of every distribution installed in the running environment."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            found.setdefault(_normalize(name), dist.version)
    return found


def requirements_key(req_file: Path, base: dict[str, str] | None = None) -> str:
    """Cache key: the requirements file, the interpreter and the packages the environment already has."""
    base = base_packages() if base is None else base
    digest = hashlib.sha256()
    digest.update(req_file.name.encode() + b"\0" + req_file.read_bytes() + b"\0")
    digest.update(f"{sys.implementation.name}-{sys.version_info[:3]}-{sys.platform}\0".encode())
    for name in sorted(base):
        digest.update(f"{name}=={base[name]}\n".encode())
    return digest.hexdigest()[:32]


def _installer(target: Path, req_file: Path, constraints: Path) -> list[str]:
    """uv when it is on PATH (fast, cached), else pip of the running interpreter."""
    common = ["--target", str(target), "-r", str(req_file), "--constraint", str(constraints)]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable, "--quiet", *common]
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise DagopsError(
            f"Cannot install the requirements in {req_file.name}: neither uv nor pip is available "
            "to this Python (the runtime image needs uv on PATH)."
        )
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        *common,
    ]


def prune_base_duplicates(site: Path, base: dict[str, str]) -> list[str]:
    """Remove from ``site`` every distribution the environment already has at the same version.

    Returns the removed ``name==version`` strings. Files are taken from each distribution's RECORD.
    """
    removed = []
    for info in sorted(site.glob("*.dist-info")):
        stem = info.name[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        if not version or base.get(_normalize(name)) != version:
            continue
        record = info / "RECORD"
        if record.is_file():
            for line in record.read_text().splitlines():
                rel = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
                path = (site / rel).resolve()
                if rel and path.is_relative_to(site.resolve()) and path.is_file():
                    path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed.append(f"{name}=={version}")
    # Directories left empty by the removal (package folders, __pycache__).
    for dirpath, _dirnames, _files in sorted(os.walk(site, topdown=False), reverse=False):
        path = Path(dirpath)
        if path != site and not any(path.iterdir()):
            path.rmdir()
    return removed


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.lower().startswith(("error", "\u00d7", "fatal", "because")):
            return line
    return lines[-1] if lines else "no output"


def ensure_requirements(
    tree: Path,
    cache_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Path | None:
    """Install the tree's requirements (once per key) and return the directory to put on PYTHONPATH.

    Returns None when the tree lists no requirements. Raises DagopsError when the install fails;
    nothing is left in ``cache_dir`` then. Safe to call from several processes at once: each
    installs into a private directory and the first to finish renames it into place.
    """
    req_file = requirements_file(tree)
    if req_file is None:
        return None
    # Only the tree's own files, each part of the key; indexes only when the operator allows them.
    inputs = check_requirements(req_file, tree)
    base = base_packages()
    key = inputs_key(requirements_key(req_file, base), tree, inputs)
    final = cache_dir / key
    if (final / COMPLETE).is_file():
        return final / SITE
    cache_dir.mkdir(parents=True, exist_ok=True)
    if timeout is None:
        timeout = float(os.environ.get(INSTALL_TIMEOUT_VAR) or DEFAULT_INSTALL_TIMEOUT)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{key}.")).absolute()
    home = Path(tempfile.mkdtemp(prefix="dagops-install-"))
    try:
        constraints = work / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(base.items())))
        site = work / SITE
        if log:
            log(f"installing the requirements of {req_file.name} (key {key[:12]})")
        try:
            # The repository's build code runs here: none of the operator's secrets, a scratch HOME.
            proc = subprocess.run(
                _installer(site, req_file.absolute(), constraints),
                cwd=tree,
                env=untrusted_env(home, installer=True),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DagopsError(
                f"Installing the requirements of {req_file.name} took longer than {timeout:.0f} s "
                f"(set {INSTALL_TIMEOUT_VAR} to allow more)."
            ) from None
        if proc.returncode != 0:
            raise DagopsError(
                f"Cannot install the requirements in {req_file.name}: {_last_line(proc.stderr + proc.stdout)}"
            )
        site.mkdir(exist_ok=True)
        prune_base_duplicates(site, base)
        constraints.unlink()
        (work / COMPLETE).write_text(req_file.name + "\n")
        try:
            os.rename(work, final)
        except OSError:
            # Another process finished first with the same key: use its directory.
            if not (final / COMPLETE).is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return final / SITE


def pythonpath(extra: Path | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: os.environ) with ``extra`` first on PYTHONPATH."""
    result = dict(os.environ if env is None else env)
    if extra is not None:
        current = result.get("PYTHONPATH")
        result["PYTHONPATH"] = os.pathsep.join([str(extra), *([current] if current else [])])
    return result


CACHE_DIRNAME = ".requirements"


def cache_dir(code_dir: Path) -> Path:
    """The requirements cache of a code dir: ``<code-dir>/.requirements`` (never a location name)."""
    return Path(code_dir) / CACHE_DIRNAME


def location_env(
    tree: Path,
    code_dir: Path,
    env: dict[str, str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """The environment to import-check and serve ``tree`` with: its requirements first on PYTHONPATH.

    The sync agent's hook: call it for a new build before the import check (a DagopsError rejects the
    revision like an import error), and for ``current`` before starting the code server (a cache hit,
    no install). Returns a copy of ``env`` (default os.environ), unchanged when there are no requirements.
    """
    return pythonpath(ensure_requirements(tree, cache_dir(code_dir), log=log), env)
