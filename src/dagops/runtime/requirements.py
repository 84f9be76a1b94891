"""Per-location Python requirements: installed once per requirements hash, then put on PYTHONPATH.

(About 400 lines on purpose: one job, a location's requirements from the files that declare them to
the directory on PYTHONPATH; every step shares the cache layout and key described here.)

A code location's project folder (``dagops.runtime.sync.target``: the folder of its pyproject.toml, setup.py
or setup.cfg, else the tree) declares its dependencies in any of the places Python projects do, and
all of them are installed, in a directory of its own outside the image:

- ``pyproject.toml`` ``[project] dependencies`` (or dynamic ones), ``setup.py`` and ``setup.cfg``:
  read by uv, which builds the project's metadata (PEP 517) when they are not static;
- ``requirements.txt``, when it parses: an unreadable one (UTF-16 from a Windows shell, conda syntax)
  is skipped with a warning when the project declares its dependencies elsewhere, else refused.

    <cache>/<key>/site/      the packages (``pip install --target`` layout), on the code server's PYTHONPATH
    <cache>/<key>/site/bin/  their console scripts (``dbt`` ...), on the code server's PATH
    <cache>/<key>/.complete  written last: a directory without it is never used

``key`` is the sha256 of the declaring files, the interpreter version and every package already
installed in the running environment, so a new image (new dagster) or a changed file installs afresh,
and an unchanged one costs one ``stat``. The packages shared with Dagster's own processes are pinned
to the image's versions (``--constraint``): ``dagster``, ``dagster-pipes``, ``dagster-postgres``,
``dagster-aws`` and everything they require (grpcio, protobuf, sqlalchemy, boto3 ...), because the code
server and the run workers import them together with the location's code, and the webserver and
daemon speak dagster's gRPC contract with them. Any other package of the image (dev tools, the
webserver's own) is the location's business: a repository pinning another ``pathspec`` gets its own.
A repository that pins another dagster is refused with uv's explanation of the conflict: every code
server here runs the image's dagster (one environment per location on its own dagster is not offered).
Copies of packages the image already has (same version) are removed from the target afterwards, so
the directory holds only what the location adds.

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

from dagops import settings
from dagops.errors import DagopsError
from dagops.untrusted import check_requirements, inputs_key, untrusted_env

REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT = "pyproject.toml"
SITE = "site"
COMPLETE = ".complete"
INSTALL_TIMEOUT_VAR = "DAGOPS_REQUIREMENTS_TIMEOUT"
# The distributions imported by the code server and the run workers together with the location's code.
SHARED_ROOTS = ("dagster", "dagster-pipes", "dagster-postgres", "dagster-aws")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_txt_problem(path: Path) -> str | None:
    """Why ``path`` is not a requirements file pip/uv can read (one phrase), or None when it parses."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-"):
            continue
        line = re.split(r"\s--hash[= ]", line)[0].strip()
        if re.match(r"(\.{0,2}/|[a-z][a-z0-9+.-]*://|git\+)", line):
            continue  # a path or URL
        try:
            Requirement(line)
        except InvalidRequirement:
            return f"line {number} ({raw.strip()[:60]!r}) is not a requirement"
    return None


def _declares_dependencies(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DagopsError(f"{pyproject} is not valid TOML: {exc}.") from None
    project = data.get("project") or {}
    if not isinstance(project, dict):
        return False
    dynamic = project.get("dynamic") or []
    return bool(project.get("dependencies")) or (isinstance(dynamic, list) and "dependencies" in dynamic)


def requirement_sources(project: Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """Every file of ``project`` that declares dependencies (rule in the module docstring)."""
    sources: list[Path] = []
    pyproject = project / PYPROJECT
    if pyproject.is_file() and _declares_dependencies(pyproject):
        sources.append(pyproject)
    elif (project / "setup.py").is_file():
        sources.append(project / "setup.py")
    elif (project / "setup.cfg").is_file():
        sources.append(project / "setup.cfg")
    txt = project / REQUIREMENTS_TXT
    if txt.is_file():
        problem = requirements_txt_problem(txt)
        if problem is None:
            sources.append(txt)
        elif sources:
            if log:
                log(f"warning: {REQUIREMENTS_TXT} ignored ({problem}); using {sources[0].name}")
        else:
            raise DagopsError(
                f"Cannot read the project's {REQUIREMENTS_TXT}: {problem}; fix it "
                "(UTF-8, one requirement per line) or declare the dependencies in pyproject.toml."
            )
    return sources


def requirements_file(tree: Path) -> Path | None:
    """The first file of ``tree`` that declares dependencies (see :func:`requirement_sources`)."""
    sources = requirement_sources(tree)
    return sources[0] if sources else None


def base_packages() -> dict[str, str]:
    """Normalized name -> version of every distribution installed in the running environment."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            found.setdefault(_normalize(name), dist.version)
    return found


def shared_packages(base: dict[str, str] | None = None) -> dict[str, str]:
    """The packages a location must share with Dagster's processes: SHARED_ROOTS and all they require
    (markers evaluated for this interpreter), at the versions installed here."""
    from packaging.requirements import InvalidRequirement, Requirement

    base = base_packages() if base is None else base
    found: dict[str, str] = {}
    todo = [name for name in SHARED_ROOTS if name in base]
    while todo:
        name = todo.pop()
        if name in found or name not in base:
            continue
        found[name] = base[name]
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normalize(req.name))
    return found


def requirements_key(req_file: Path | list[Path], base: dict[str, str] | None = None) -> str:
    """Cache key: the declaring files, the interpreter and the packages the environment already has."""
    base = base_packages() if base is None else base
    files = [req_file] if isinstance(req_file, Path) else req_file
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{sys.implementation.name}-{sys.version_info[:3]}-{sys.platform}\0".encode())
    for name in sorted(base):
        digest.update(f"{name}=={base[name]}\n".encode())
    return digest.hexdigest()[:32]


def _installer(target: Path, sources: list[Path], constraints: Path) -> list[str]:
    """uv when it is on PATH (fast, cached; reads pyproject.toml, setup.py and setup.cfg), else pip of
    the running interpreter (requirements.txt only)."""
    common = ["--target", str(target)]
    for source in sources:
        common += ["-r", str(source)]
    common += ["--constraint", str(constraints)]
    uv = shutil.which("uv")
    if uv:
        # --no-config: settings come from no pyproject.toml/uv.toml around the checkout (the project
        # that holds repos/ has its own, and a repository's [tool.uv] must not redirect the install).
        return [uv, "pip", "install", "--no-config", "--python", sys.executable, "--quiet", *common]
    import importlib.util

    names = ", ".join(source.name for source in sources)
    if importlib.util.find_spec("pip") is None:
        raise DagopsError(
            f"Cannot install the requirements in {names}: neither uv nor pip is available "
            "to this Python (the runtime image needs uv on PATH)."
        )
    if any(source.name != REQUIREMENTS_TXT for source in sources):
        raise DagopsError(
            f"Cannot install the requirements in {names}: uv is not on PATH "
            "(pip reads only requirements.txt; the runtime image has uv)."
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
    """The installer's error as one line: the error and uv's explanation after it ("cause: ...")."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for index, line in enumerate(lines):
        if line.lower().startswith(("error", "\u00d7", "fatal")):
            explanation = [ln.lstrip("\u2570\u2500\u25b6 ").strip() for ln in lines[index + 1 :]]
            return " ".join([line.rstrip(":"), *[ln for ln in explanation if ln]])
    for line in reversed(lines):
        if line.lower().startswith("because"):
            return line
    return lines[-1] if lines else "no output"


def ensure_requirements(
    tree: Path,
    cache_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
    timeout: float | None = None,
    entry: str | None = None,
) -> Path | None:
    """Install the project's requirements (once per key) and return the directory to put on PYTHONPATH.

    The project is the folder of ``entry`` (``dagops.runtime.sync.target``), the tree itself without one.
    Returns None when the project declares no requirements. Raises DagopsError when the project needs
    another Python (its requires-python) or the install fails;
    nothing is left in ``cache_dir`` then. Safe to call from several processes at once: each
    installs into a private directory and the first to finish renames it into place.
    """
    from dagops.runtime.sync.target import python_problem, resolve

    project = resolve(tree, entry).project_dir if entry else tree
    if problem := python_problem(project):
        raise DagopsError(problem)
    sources = requirement_sources(project, log)
    if not sources:
        return None
    names = ", ".join(str(source.relative_to(tree)) for source in sources)
    base = base_packages()
    key = _install_key(tree, sources, base)
    final = cache_dir / key
    if (final / COMPLETE).is_file():
        return final / SITE
    if timeout is None:
        timeout = settings.load(settings.RequirementsSettings).install_timeout
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{key}.")).absolute()
    home = Path(tempfile.mkdtemp(prefix="dagops-install-"))
    try:
        if log:
            log(f"installing the requirements of {names} (key {key[:12]})")
        _install(work, project, sources, base, names=names, home=home, timeout=timeout)
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


def _install_key(tree: Path, sources: list[Path], base: dict[str, str]) -> str:
    """The cache key of ``sources``: their content, the environment's packages and what they include."""
    # Only the tree's own files, each part of the key; indexes only when the operator allows them.
    # setup.py/setup.cfg are read by the build (uv, --no-config, scrubbed environment), not here.
    inputs = [
        found
        for source in sources
        if source.suffix in (".txt", ".toml")
        for found in check_requirements(source, tree)
    ]
    return inputs_key(requirements_key(sources, base), tree, inputs)


def _install(
    work: Path,
    project: Path,
    sources: list[Path],
    base: dict[str, str],
    *,
    names: str,
    home: Path,
    timeout: float,
) -> None:
    """Install ``sources`` into ``work/site`` (shared packages pinned), then mark ``work`` complete."""
    constraints = work / "constraints.txt"
    shared = shared_packages(base)
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(shared.items())))
    site = work / SITE
    try:
        # The repository's build code runs here: none of the operator's secrets, a scratch HOME.
        proc = subprocess.run(
            _installer(site, sources, constraints),
            cwd=project,
            env=untrusted_env(home, installer=True),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DagopsError(
            f"Installing the requirements of {names} took longer than {timeout:.0f} s "
            f"(set {INSTALL_TIMEOUT_VAR} to allow more)."
        ) from None
    if proc.returncode != 0:
        detail = _last_line(proc.stderr + proc.stdout).rstrip(".")
        hint = ""
        if "dagster" in detail.lower() and "dagster" in shared:
            hint = (
                f"; the code servers here run dagster {shared['dagster']}, so the project must allow "
                f"that version (and its dagster-* libraries the matching ones)"
            )
        raise DagopsError(f"Cannot install the requirements in {names}: {detail}{hint}.")
    site.mkdir(exist_ok=True)
    prune_base_duplicates(site, base)
    constraints.unlink()
    (work / COMPLETE).write_text(names + "\n")


def pythonpath(extra: Path | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: os.environ) with ``extra`` first on PYTHONPATH and its console
    scripts (``extra/bin``) first on PATH."""
    result = dict(os.environ if env is None else env)
    if extra is not None:
        current = result.get("PYTHONPATH")
        result["PYTHONPATH"] = os.pathsep.join([str(extra), *([current] if current else [])])
        if (extra / "bin").is_dir():
            path = result.get("PATH")
            result["PATH"] = os.pathsep.join([str(extra / "bin"), *([path] if path else [])])
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
    entry: str | None = None,
) -> dict[str, str]:
    """The environment to import-check and serve ``tree`` with: its requirements first on PYTHONPATH
    (their scripts on PATH) and, given the ``entry``, the project's import root and folder before them.

    The sync agent's hook: call it for a new build before the import check (a DagopsError rejects the
    revision like an import error), and for ``current`` before starting the code server (a cache hit,
    no install). Returns a copy of ``env`` (default os.environ), unchanged when there is nothing to add.
    """
    result = pythonpath(ensure_requirements(tree, cache_dir(code_dir), log=log, entry=entry), env)
    if entry:
        from dagops.runtime.sync.target import resolve, with_paths

        result = with_paths(resolve(tree, entry), result)
    return result
