"""A repository's code and requirements are untrusted input: what they may see and what they may name.

Two rules, used wherever a repository's own code runs on the operator's machine or in an agent:

- :func:`untrusted_env`: the environment of the import check (``repo.add``/``repo.update``) and of every
  requirements install. Only what such a process needs is passed on (PATH, locale, PYTHONPATH, a temporary
  HOME; for the installer also proxy and CA settings and its own ``UV_*``/``PIP_*`` configuration), never the
  operator's AWS credentials, database password or ``DAGOPS_*``/``DAGSTER_*`` settings.
- :func:`check_requirements`: a repository's ``requirements.txt`` (or ``pyproject.toml`` dependencies) may
  name packages, versions, markers, remote (https/VCS) URLs, and files inside the repository: other
  requirement files (``-r``/``-c``) and local wheels or source folders (``./wheels/x.whl``). Those local
  inputs are returned, and their bytes become part of the install's cache key (:func:`inputs_key`), so a
  changed wheel or included file installs afresh. Paths outside the repository (absolute, ``..``, ``~``,
  ``file:`` URLs) and editable installs (``-e``) are refused. Index options (``--index-url``,
  ``--extra-index-url``, ``--find-links``, ``--trusted-host``, ``--no-index``, ``uv.toml`` or
  ``[tool.uv]`` indexes and sources) and plain-http URLs are refused unless the operator allows them
  with ``DAGOPS_REQUIREMENTS_INDEXES`` (``https``: index options with https URLs; ``any``: plain http
  too). ``${VAR}`` references are refused (the installer would expand them from its environment).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagops import settings
from dagops.errors import DagopsError

INDEXES_VAR = "DAGOPS_REQUIREMENTS_INDEXES"

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
_INCLUDE_OPTIONS = frozenset({"-r", "--requirement", "-c", "--constraint"})
_EDITABLE_OPTIONS = frozenset({"-e", "--editable"})
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
    return settings.load(settings.RequirementsSettings, environ=env).index_policy


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


class _Checker:
    """One requirements check: the tree, the policy, and the local files found so far."""

    def __init__(self, tree: Path, policy: str) -> None:
        self.tree = tree.resolve()
        self.policy = policy
        self.inputs: list[Path] = []

    def local(self, path_text: str, base: Path, where: str) -> None:
        """A file or folder named by a requirement: inside the tree, and recorded as an input."""
        if path_text.startswith(("/", "~")) or path_text.lower().startswith("file:"):
            raise DagopsError(
                f"{where} refers to {path_text!r} outside the repository; name files inside it with a "
                "relative path (./wheels/x.whl), or use an index."
            )
        target = (base / path_text).resolve()
        if not target.is_relative_to(self.tree):
            raise DagopsError(
                f"{where} refers to {path_text!r}, which is outside the repository; only its own files may "
                "be installed from a path."
            )
        if target not in self.inputs:
            self.inputs.append(target)

    def url(self, url: str, where: str, *, index: bool) -> None:
        scheme_match = _URL.match(url)
        scheme = scheme_match.group(1).lower() if scheme_match else ""
        if scheme == "file" or url.lower().startswith("file:"):
            raise DagopsError(
                f"{where} names a file: URL ({url!r}); name files inside the repository with a relative path."
            )
        if index and self.policy == "refuse":
            raise DagopsError(
                f"{where} names a package index or link ({url!r}); a repository may not choose where "
                f"packages come from unless the operator allows it ({INDEXES_VAR}=https)."
            )
        if index and not scheme:
            self.local(url, self.tree, where)  # --find-links ./wheels
            return
        insecure = scheme in ("http", "git+http") or scheme.endswith("+http")
        if insecure and self.policy != "any":
            raise DagopsError(
                f"{where} uses plain http ({url!r}); use https, or allow it with {INDEXES_VAR}=any."
            )

    def requirement(self, spec: str, where: str) -> None:
        """One requirement (PEP 508, a direct URL, or a path)."""
        if "${" in spec:
            raise DagopsError(f"{where} uses an environment variable (${{...}}), which a repository may not.")
        name, at, url = spec.partition("@")
        if at and re.fullmatch(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*", name):
            self.url(url.split(";")[0].strip(), where, index=False)
            return
        head = spec.split(";")[0].split()[0] if spec.split() else spec
        if _URL.match(head) or head.lower().startswith("file:"):
            self.url(head, where, index=False)
        elif head.startswith((".", "/", "~")) or "/" in head or "\\" in head or _ARCHIVE.search(head):
            self.local(head, self.tree, where)  # pip reads such paths from its working folder: the tree

    def option(self, line: str, where: str, base: Path, depth: int) -> None:
        option, _, value = line.replace("=", " ", 1).partition(" ")
        if option.startswith("-") and not option.startswith("--") and len(option) > 2:
            option, value = option[:2], option[2:] + " " + value  # -rfile.txt, -ihttps://...
        value = value.strip()
        if option in _EDITABLE_OPTIONS:
            raise DagopsError(
                f"{where} asks for an editable install ({option} {value}); list the package itself instead."
            )
        if option in _INCLUDE_OPTIONS:
            if not value:
                raise DagopsError(f"{where} names no file after {option}.")
            if _URL.match(value):
                raise DagopsError(
                    f"{where} includes a remote file ({value!r}); include files of the repository."
                )
            self.local(value, base, where)
            included = (base / value).resolve()
            if depth > 10:
                raise DagopsError(f"{where} nests included requirement files more than 10 deep.")
            if included.is_file():
                self.file(included, depth + 1)
            return
        if option in _INDEX_OPTIONS:
            if self.policy == "refuse":
                raise DagopsError(
                    f"{where} sets a package index ({option}); a repository may not choose where packages "
                    f"come from unless the operator allows it ({INDEXES_VAR}=https)."
                )
            if option == "--trusted-host" and self.policy != "any":
                raise DagopsError(
                    f"{where} trusts a host without TLS ({option}); allow it with {INDEXES_VAR}=any."
                )
            if value and option != "--trusted-host":
                self.url(value.split()[0], where, index=True)
            return
        if option not in _HARMLESS_OPTIONS:
            raise DagopsError(f"{where} uses the option {option}, which a repository's requirements may not.")

    def file(self, req_file: Path, depth: int = 0) -> None:
        try:
            text = req_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DagopsError(f"Cannot read {req_file.name}: {exc}.") from None
        if req_file.suffix == ".toml":
            self.pyproject(req_file, text)
            return
        for number, line in _logical_lines(text):
            where = f"{req_file.name} line {number}"
            if "${" in line:
                raise DagopsError(
                    f"{where} uses an environment variable (${{...}}), which a repository may not."
                )
            if line.startswith("-"):
                self.option(line, where, req_file.parent, depth)
                continue
            spec, *options = re.split(r"\s+(?=-)", line)
            for option in options:  # after a requirement only its hashes (pip's other per-line options
                if option.split("=")[0].split()[0] != "--hash":  # pass settings to build code)
                    raise DagopsError(
                        f"{where} uses the option {option.split()[0]}, which a requirement may not."
                    )
            self.requirement(spec.strip(), where)

    def pyproject(self, req_file: Path, text: str) -> None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DagopsError(f"{req_file.name} is not valid TOML: {exc}.") from None
        deps = (data.get("project") or {}).get("dependencies") or []
        for number, spec in enumerate(deps if isinstance(deps, list) else [], 1):
            self.requirement(str(spec), f"{req_file.name} (dependency {number})")

    def config(self) -> None:
        """The installer runs in the tree: its uv.toml or [tool.uv] would configure uv."""
        used: list[str] = []
        if (self.tree / "uv.toml").exists():
            used.append("uv.toml")
        try:
            data = tomllib.loads((self.tree / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        uv = (data.get("tool") or {}).get("uv") if isinstance(data.get("tool"), dict) else None
        if isinstance(uv, dict):
            used += [f"[tool.uv] {key}" for key in sorted(_UV_INDEX_KEYS & set(uv))]
        if used and self.policy == "refuse":
            raise DagopsError(
                f"The repository configures the installer ({', '.join(used)}); a repository may not choose "
                f"where packages come from unless the operator allows it ({INDEXES_VAR}=https)."
            )


def check_requirements(
    req_file: Path, tree: Path | None = None, env: Mapping[str, str] | None = None
) -> list[Path]:
    """Check a requirements file (see the module's doc) and return the local files it installs from or
    includes (inside ``tree``, default: the file's folder). Raises DagopsError with one sentence."""
    checker = _Checker(tree or req_file.parent, index_policy(env))
    checker.config()
    checker.file(req_file)
    return checker.inputs


def inputs_key(key: str, tree: Path, inputs: list[Path]) -> str:
    """``key`` extended with the content of every local input (files, and folders file by file)."""
    if not inputs:
        return key
    digest = hashlib.sha256(key.encode() + b"\0")
    top = tree.resolve()
    for path in sorted(inputs):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(top)).encode("utf-8", "surrogateescape") + b"\0")
            try:
                digest.update(hashlib.sha256(file.read_bytes()).digest())
            except OSError:
                digest.update(b"missing")
    return digest.hexdigest()[:32]
