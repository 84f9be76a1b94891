"""A repository's code and requirements are untrusted input: what they may see and what they may name.

Two rules, used wherever a repository's own code runs on the operator's machine or in an agent:

- :func:`untrusted_env`: the environment of the import check (``repo.add``/``repo.update``) and of every
  requirements install. Only what such a process needs is passed on (PATH, locale, PYTHONPATH, a temporary
  HOME; for the installer also proxy and CA settings and its own ``UV_*``/``PIP_*`` configuration), never the
  operator's AWS credentials, database password or ``DAGOPS_*``/``DAGSTER_*`` settings.
- :func:`check_requirements`: a repository's ``requirements.txt`` (or ``pyproject.toml`` dependencies) may
  name packages, versions, markers and remote (https/VCS) URLs. References to other files or local paths
  (``-r``, ``-c``, ``-e``, ``./pkg.whl``, ``file:``) are refused: the install cache key covers the
  requirements file's bytes only, so such an input could change without a reinstall. Index options
  (``--index-url``, ``--extra-index-url``, ``--find-links``, ``--trusted-host``, ``--no-index``,
  ``[tool.uv]`` indexes and sources) and plain-http URLs are refused unless the operator allows them with
  ``DAGOPS_REQUIREMENTS_INDEXES`` (``https``: index options with https URLs; ``any``: plain http too).
  ``${VAR}`` references are refused (the installer would expand them from its environment).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagops.errors import DagopsError

INDEXES_VAR = "DAGOPS_REQUIREMENTS_INDEXES"
INDEX_POLICIES = ("refuse", "https", "any")

# Passed to every untrusted process: where programs are, the locale, the time zone, the temp folder.
_KEEP = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "NO_COLOR", "SYSTEMROOT"})
# Also passed to the requirements installer: network reachability and its own configuration.
_INSTALLER_KEEP = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NETRC",
    }
)
_INSTALLER_PREFIXES = ("UV_", "PIP_")

# requirements.txt options, by what they do.
_FILE_OPTIONS = frozenset({"-r", "--requirement", "-c", "--constraint", "-e", "--editable"})
_INDEX_OPTIONS = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--no-index",
        "--index",
    }
)
_HARMLESS_OPTIONS = frozenset(
    {"--pre", "--prefer-binary", "--only-binary", "--no-binary", "--require-hashes", "--hash"}
)
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|tar\.xz|zip)$", re.IGNORECASE)
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://")
_UV_INDEX_KEYS = frozenset({"index", "index-url", "extra-index-url", "find-links", "sources", "pip"})


def untrusted_env(
    home: Path,
    *,
    extra_path: Path | None = None,
    installer: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a process running a repository's code: the operator's secrets left out.

    ``home`` (a temporary folder) becomes HOME; ``extra_path`` goes first on PYTHONPATH (the
    location's installed requirements), before the operator's PYTHONPATH (folders, not secrets).
    ``installer`` adds what a requirements install needs: proxies, CA bundles, the ``UV_*``/``PIP_*``
    configuration, and the operator's cache and config folders (so an unchanged install stays a cache
    hit and a configured mirror is still used).
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in _KEEP or k.startswith("LC_")}
    env["HOME"] = str(home)
    paths = [str(extra_path)] if extra_path is not None else []
    if source.get("PYTHONPATH"):
        paths.append(source["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    if installer:
        env.update(
            {k: v for k, v in source.items() if k in _INSTALLER_KEEP or k.startswith(_INSTALLER_PREFIXES)}
        )
        real_home = Path(source.get("HOME") or Path.home())
        env["XDG_CONFIG_HOME"] = source.get("XDG_CONFIG_HOME") or str(real_home / ".config")
        cache = Path(source.get("XDG_CACHE_HOME") or real_home / ".cache")
        env.setdefault("UV_CACHE_DIR", str(cache / "uv"))
        env.setdefault("PIP_CACHE_DIR", str(cache / "pip"))
    return env


def index_policy(env: Mapping[str, str] | None = None) -> str:
    """The operator's ``DAGOPS_REQUIREMENTS_INDEXES``: refuse (default), https or any."""
    raw = ((os.environ if env is None else env).get(INDEXES_VAR) or "refuse").strip().lower()
    if raw not in INDEX_POLICIES:
        raise DagopsError(f"{INDEXES_VAR}={raw!r} is not one of {', '.join(INDEX_POLICIES)}.")
    return raw


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """requirements.txt lines as pip reads them: continuations joined, comments removed."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + line).strip()
        pending = ""
        if line:
            yield start, line
    if pending.strip():
        yield start, pending.strip()


def _check_url(url: str, where: str, policy: str, *, index: bool) -> None:
    scheme_match = _URL.search(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme == "file" or url.lower().startswith("file:") or not scheme:
        raise DagopsError(
            f"{where} refers to a local path ({url!r}): its content would not be part of the install's "
            "cache key; publish the package to an index, or name it with an https URL."
        )
    if index and policy == "refuse":
        raise DagopsError(
            f"{where} names a package index or link ({url!r}); a repository may not choose where packages "
            f"come from unless the operator allows it ({INDEXES_VAR}=https)."
        )
    insecure = scheme in ("http", "git+http") or scheme.endswith("+http")
    if insecure and policy != "any":
        raise DagopsError(
            f"{where} uses plain http ({url!r}); use https, or allow it with {INDEXES_VAR}=any."
        )


def check_requirement(spec: str, where: str, policy: str) -> None:
    """One requirement (PEP 508, a direct URL, or a path): refuse local paths and disallowed URLs."""
    if "${" in spec:
        raise DagopsError(f"{where} uses an environment variable (${{...}}), which a repository may not.")
    name, at, url = spec.partition("@")
    if at and re.fullmatch(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*", name):
        _check_url(url.split(";")[0].strip(), where, policy, index=False)
        return
    head = spec.split(";")[0].split()[0] if spec.split() else spec
    if _URL.search(head) or head.lower().startswith("file:"):
        _check_url(head, where, policy, index=False)
    elif head.startswith((".", "/", "~")) or "/" in head or "\\" in head or _ARCHIVE.search(head):
        _check_url(head, where, policy, index=False)  # a local path: refused there


def _check_option(line: str, where: str, policy: str) -> None:
    option, _, value = line.replace("=", " ", 1).partition(" ")
    if option.startswith("-") and not option.startswith("--") and len(option) > 2:
        option, value = option[:2], option[2:] + " " + value  # -rfile.txt, -ihttps://...
    value = value.strip()
    if option in _FILE_OPTIONS:
        raise DagopsError(
            f"{where} includes another file or a local path ({option} {value}): its content would not "
            "be part of the install's cache key; list the requirements in the file itself."
        )
    if option in _INDEX_OPTIONS:
        if policy == "refuse":
            raise DagopsError(
                f"{where} sets a package index ({option}); a repository may not choose where packages come "
                f"from unless the operator allows it ({INDEXES_VAR}=https)."
            )
        if option == "--trusted-host" and policy != "any":
            raise DagopsError(
                f"{where} trusts a host without TLS ({option}); allow it with {INDEXES_VAR}=any."
            )
        if value:
            _check_url(value.split()[0], where, policy, index=True)
        return
    if option not in _HARMLESS_OPTIONS:
        raise DagopsError(f"{where} uses the option {option}, which a repository's requirements may not.")


def check_requirements(req_file: Path, env: Mapping[str, str] | None = None) -> None:
    """Refuse a requirements file whose install would depend on more than its own bytes, or on an index
    the operator did not allow (see the module's doc). Raises DagopsError with one sentence."""
    policy = index_policy(env)
    try:
        text = req_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DagopsError(f"Cannot read {req_file.name}: {exc}.") from None
    if req_file.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DagopsError(f"{req_file.name} is not valid TOML: {exc}.") from None
        uv = (data.get("tool") or {}).get("uv") or {}
        used = sorted(_UV_INDEX_KEYS & set(uv)) if isinstance(uv, dict) else []
        if used and policy == "refuse":
            raise DagopsError(
                f"{req_file.name} sets [tool.uv] {', '.join(used)}; a repository may not choose where "
                f"packages come from unless the operator allows it ({INDEXES_VAR}=https)."
            )
        deps = (data.get("project") or {}).get("dependencies") or []
        for number, spec in enumerate(deps if isinstance(deps, list) else [], 1):
            check_requirement(str(spec), f"{req_file.name} (dependency {number})", policy)
        return
    for number, line in _logical_lines(text):
        where = f"{req_file.name} line {number}"
        if "${" in line:
            raise DagopsError(f"{where} uses an environment variable (${{...}}), which a repository may not.")
        if line.startswith("-"):
            _check_option(line, where, policy)
        else:
            check_requirement(line.split(" --")[0].strip(), where, policy)
