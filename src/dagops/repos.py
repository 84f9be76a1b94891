"""External git repositories as code locations: add, update, remove, list, logs.

A repository becomes a code location in this order, and nothing is written before the checks pass:

1. the name, URL, ref and entry are validated (no git or shell ever sees an unchecked string);
2. the repository is cloned shallow into a private directory beside ``repos/``;
3. its Definitions are found (rule in :func:`find_entry`), its requirements installed (cached), and the
   entry is import-checked in a separate Python process;
4. the tree is uploaded to ``dags/<name>/`` (manifest last);
5. the clone is moved to ``repos/<name>`` and the registry is saved (last).

A failure in any step undoes the earlier ones: the upload is removed, the clone deleted, the registry
left byte-for-byte as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops import registry
from dagops.errors import DagopsError
from dagops.manifest import scan
from dagops.names import validate_location_name
from dagops.paths import repo_root, state_dir
from dagops.requirements import location_env
from dagops.sync.target import resolve as resolve_target
from dagops.untrusted import untrusted_env

REPOS_DIR = "repos"
OWN_LOCATIONS_DIR = "code_locations"
DEFAULT_ENTRY = "definitions.py"
GIT_TIMEOUT_VAR = "DAGOPS_GIT_TIMEOUT"
DEFAULT_GIT_TIMEOUT = 300
LOADCHECK_TIMEOUT = 300
# Transports git may use, for the clone and anything it triggers (no ext::, no fd::, no plain http).
ALLOWED_PROTOCOLS = "https:ssh:file"

Log = Callable[[str], None]

# Characters a URL may contain at all; anything else (whitespace, quotes, ; | & $ ` < > ( ) etc.) is refused.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~%/+:@=-]+")
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})"
_PATH_CHARS = r"[A-Za-z0-9._~%/+=@-]"
_USER = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_URL_FORMS = (
    re.compile(rf"https://(?:{_USER}@)?{_HOST}(?::[0-9]{{1,5}})?/{_PATH_CHARS}+"),
    re.compile(rf"ssh://(?:{_USER}@)?{_HOST}(?::[0-9]{{1,5}})?/{_PATH_CHARS}+"),
    re.compile(rf"{_USER}@{_HOST}:[A-Za-z0-9._~/+][A-Za-z0-9._~%/+=-]*"),
    re.compile(rf"file:///{_PATH_CHARS}*"),
)
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}")
_ENTRY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}\.py")


@dataclass(frozen=True)
class RepoStatus:
    """One line of ``repo.list``."""

    name: str
    url: str
    ref: str
    commit: str
    sync: str


# --------------------------------------------------------------------------- validation


def validate_url(url: str) -> str:
    """Return ``url`` if it is a git URL of an accepted form (https, ssh, scp-like, file), else raise."""
    if not isinstance(url, str) or not url:
        raise DagopsError(
            "The repository URL is empty: give an https://, ssh://, git@host:path or file:// URL."
        )
    if url.startswith("-"):
        raise DagopsError(f"Refusing repository URL {url!r}: a URL cannot start with '-'.")
    if len(url) > 2048 or not _URL_CHARS.fullmatch(url):
        raise DagopsError(
            f"Refusing repository URL {url!r}: it contains whitespace or characters a git URL does not need "
            "(quotes, ; & | $ ` < > ( ) and the like)."
        )
    authority = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if "@" in authority and ":" in authority.rsplit("@", 1)[0]:
        raise DagopsError(
            "Refusing a repository URL with a password or token in it (it would be stored in the registry): "
            "use a git credential helper or an ssh key."
        )
    if not any(form.fullmatch(url) for form in _URL_FORMS):
        raise DagopsError(
            f"{url!r} is not a git URL this tool accepts: use https://host/path, ssh://host/path, "
            "user@host:path or file:///path."
        )
    return url


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it can name a branch or tag, else raise."""
    if (
        not isinstance(ref, str)
        or not _REF.fullmatch(ref)
        or ".." in ref
        or "//" in ref
        or ref.endswith((".lock", "/", "."))
        or "/." in ref
    ):
        raise DagopsError(
            f"Invalid git ref {ref!r}: give a branch or tag name "
            "(letters, digits, '.', '_', '-', '/' and '+')."
        )
    return ref


def validate_entry(entry: str) -> str:
    """Return ``entry`` if it is a relative path to a .py file inside the repository, else raise."""
    parts = entry.split("/") if isinstance(entry, str) else []
    if not isinstance(entry, str) or not _ENTRY.fullmatch(entry) or any(p in ("", ".", "..") for p in parts):
        raise DagopsError(
            f"Invalid entry {entry!r}: give the path of a .py file inside the repository, "
            "relative to its root (no '..', no leading '/')."
        )
    return entry


def validate_path(path: str) -> str:
    """Return ``path`` if it is a relative folder inside the repository, else raise."""
    parts = path.strip("/").split("/") if isinstance(path, str) else []
    if (
        not isinstance(path, str)
        or path.startswith("/")
        or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}", path)
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise DagopsError(
            f"Invalid --path {path!r}: give a folder inside the repository, relative to its root "
            "(no '..', no leading '/')."
        )
    return path.strip("/")


def _check_name_free(name: str, root: Path, locations: list[registry.Location]) -> None:
    validate_location_name(name)
    if any(loc.name == name for loc in locations):
        raise DagopsError(f"A code location named {name!r} is already registered; choose another name.")
    if (root / OWN_LOCATIONS_DIR / name).exists():
        raise DagopsError(
            f"{OWN_LOCATIONS_DIR}/{name} already exists (one of the project's own locations); "
            "choose another name."
        )
    in_use = any(loc.url and loc.source == f"{REPOS_DIR}/{name}" for loc in locations)
    if not in_use and ((root / REPOS_DIR / name).exists() or (root / REPOS_DIR / name).is_symlink()):
        raise DagopsError(
            f"{REPOS_DIR}/{name} exists but is not registered; delete it or choose another name."
        )


# --------------------------------------------------------------------------- git


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS,
        GCM_INTERACTIVE="never",
        LC_ALL="C",
    )
    return env


def _git_detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip().rstrip(".")
    return lines[-1].rstrip(".") if lines else "git gave no reason"


def git(args: list[str], *, cwd: Path | None = None, what: str = "git") -> str:
    """Run git with an argument list (never a shell), no prompts and a timeout; return stdout."""
    timeout = float(os.environ.get(GIT_TIMEOUT_VAR) or DEFAULT_GIT_TIMEOUT)
    cmd = ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=_git_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise DagopsError("git is not installed or not on PATH.") from None
    except subprocess.TimeoutExpired:
        raise DagopsError(
            f"{what} took longer than {timeout:.0f} s (set {GIT_TIMEOUT_VAR} to allow more)."
        ) from None
    if proc.returncode != 0:
        raise DagopsError(f"{what} failed: {_git_detail(proc.stderr)}.")
    return proc.stdout.strip()


def clone(url: str, ref: str | None, dest: Path) -> tuple[str, str]:
    """Clone ``url`` at ``ref`` (default branch when None), shallow, into the empty/absent ``dest``.

    Returns ``(ref, commit)``: the branch or tag actually cloned and the full commit id.
    """
    args = ["clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags"]
    if ref:
        args += ["--branch", ref]
    git([*args, "--", url, str(dest)], what=f"git clone of {url}")
    commit = git(["rev-parse", "HEAD"], cwd=dest, what="git rev-parse")
    if not ref:
        try:
            ref = git(["symbolic-ref", "--short", "HEAD"], cwd=dest, what="git symbolic-ref")
        except DagopsError:
            ref = "HEAD"
    return ref, commit


def remote_commit(url: str, ref: str | None) -> str | None:
    """The commit ``ref`` (default branch when None) points at in ``url``, from ``git ls-remote`` (no
    clone); None when the remote does not list it."""
    wanted = [f"refs/tags/{ref}^{{}}", f"refs/heads/{ref}", f"refs/tags/{ref}"] if ref else ["HEAD"]
    # An annotated tag is listed twice: the tag object, then (pattern "<tag>^{}") its commit.
    patterns = [ref, f"{ref}^{{}}"] if ref else ["HEAD"]
    out = git(["ls-remote", "--", url, *patterns], what=f"git ls-remote of {url}")
    found = {}
    for line in out.splitlines():
        commit, _, name = line.partition("\t")
        found[name.strip()] = commit.strip()
    for name in wanted:
        if re.fullmatch(r"[0-9a-f]{40}", found.get(name, "")):
            return found[name]
    return None


def default_branch(url: str) -> str | None:
    """The branch ``url``'s HEAD names, from ``git ls-remote --symref`` (no clone); None if none."""
    out = git(["ls-remote", "--symref", "--", url, "HEAD"], what=f"git ls-remote of {url}")
    for line in out.splitlines():
        target, _, head = line.partition("\t")
        if head.strip() == "HEAD" and target.startswith("ref: refs/heads/"):
            return target.removeprefix("ref: refs/heads/")
    return None


def clone_commit(url: str, commit: str, dest: Path) -> None:
    """Check out exactly ``commit`` of ``url`` into ``dest`` (one shallow fetch by commit id)."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit or ""):
        raise DagopsError(f"The registry records no full commit id for {url} ({commit!r}); run repo.update.")
    dest.mkdir(parents=True, exist_ok=True)
    git(["init", "--quiet", str(dest)], what="git init")
    git(["fetch", "--quiet", "--depth", "1", "--", url, commit], cwd=dest, what=f"git fetch of {commit[:12]}")
    git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], cwd=dest, what="git checkout")


# --------------------------------------------------------------------------- definitions


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Folders never searched for projects: VCS, environments, caches, tests, docs, front-end packages.
_SKIP_DIRS = frozenset({"node_modules", "site-packages", "tests", "test", "docs", "build", "dist"})
PROJECT_SEARCH_DEPTH = 4


def _rel(*parts: str) -> str:
    """Join relative POSIX paths, dropping empty and '.' components."""
    return "/".join(c for p in parts for c in p.split("/") if c not in ("", "."))


def _module_file(tree: Path, module: str, folder: str = "") -> str | None:
    """The file of a dotted module name under ``folder`` or ``folder/src`` (relative to ``tree``)."""
    if not isinstance(module, str) or not _MODULE.fullmatch(module):
        return None
    rel = module.replace(".", "/")
    for base in (folder, _rel(folder, "src")):
        for candidate in (_rel(base, f"{rel}.py"), _rel(base, rel, "__init__.py")):
            if (tree / candidate).is_file():
                return candidate
    return None


def _read_toml(path: Path, tree: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DagopsError(f"The repository's {path.relative_to(tree)} is not valid TOML: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path, tree: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DagopsError(f"The repository's {path.relative_to(tree)} is not valid YAML: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _declared_targets(tree: Path, folder: str) -> list[tuple[str, str, str]]:
    """(kind, name, working folder) of what ``folder``'s own files tell Dagster to load, the first that
    names anything, in ``dagster dev``'s order: pyproject ``[tool.dagster]`` (module_name or modules),
    ``[tool.dg.project]`` (or dg.toml), then workspace.yaml entries, then dagster_cloud.yaml locations.
    ``kind`` is "module" or "file"."""
    here = tree / folder if folder else tree
    found: list[tuple[str, str, str]] = []
    pyproject = here / "pyproject.toml"
    data = _read_toml(pyproject, tree) if pyproject.is_file() else {}
    tool = _table(data, "tool")
    dagster = _table(tool, "dagster")
    dg_file = here / "dg.toml"
    dg = (
        _table(_read_toml(dg_file, tree), "project")
        if dg_file.is_file()
        else _table(_table(tool, "dg"), "project")
    )
    if isinstance(dagster.get("module_name"), str):
        found.append(("module", dagster["module_name"], folder))
    elif isinstance(dagster.get("modules"), list):
        found += [
            ("module", m["name"], folder)
            for m in dagster["modules"]
            if isinstance(m, dict) and m.get("type") == "module" and isinstance(m.get("name"), str)
        ]
    elif isinstance(dg.get("root_module"), str):
        if dg.get("autoload_defs"):
            raise DagopsError(
                f"The dg project in {folder or 'the repository root'} uses autoload_defs, which this stack "
                "does not load: add a definitions.py with a @dg.definitions function returning "
                "dg.load_from_defs_folder(...) and set code_location_target_module (or remove autoload_defs)."
            )
        target = dg.get("code_location_target_module") or f"{dg['root_module']}.definitions"
        found.append(("module", str(target), folder))
    # Then, as `dagster dev` does without pyproject settings, workspace.yaml; then dagster_cloud.yaml.
    for config, key in (("workspace.yaml", "load_from"), ("dagster_cloud.yaml", "locations")):
        path = here / config
        items = _read_yaml(path, tree).get(key) if path.is_file() and not found else None
        for item in items if isinstance(items, list) else []:
            found += _yaml_target(item, folder)
    return found


def _yaml_target(item: Any, folder: str) -> list[tuple[str, str, str]]:
    """One dagster_cloud.yaml location or workspace.yaml load_from entry, as (kind, name, folder)."""
    if not isinstance(item, dict):
        return []
    if isinstance(item.get("code_source"), dict):  # dagster_cloud.yaml
        source = item["code_source"]
        build = _table(item, "build")
        where = item.get("working_directory") or build.get("directory") or "."
    else:  # workspace.yaml: python_module / python_package / python_file, a string or a mapping
        key = next((k for k in ("python_module", "python_package", "python_file") if k in item), None)
        if key is None:
            return []
        value = item[key]
        field = {"python_module": "module_name", "python_package": "package_name"}.get(key, "python_file")
        source = {field: value} if isinstance(value, str) else dict(value or {})
        if key == "python_file" and "relative_path" in source:
            source["python_file"] = source["relative_path"]
        where = source.get("working_directory") or "."
    if not isinstance(where, str) or where.startswith("/") or ".." in where.split("/"):
        return []
    base = _rel(folder, where)
    for kind, field in (("module", "module_name"), ("module", "package_name"), ("file", "python_file")):
        if isinstance(source.get(field), str):
            return [(kind, source[field], base)]
    return []


def _entries_in(tree: Path, folder: str) -> list[str]:
    """The Definitions files of the project in ``folder`` (relative to ``tree``), first rule that finds any:
    what its own files declare (:func:`_declared_targets`), else ``definitions.py`` in the folder, else
    every ``<package>/definitions.py`` or ``src/<package>/definitions.py`` in it (tests excluded)."""
    declared = _declared_targets(tree, folder)
    entries: list[str] = []
    for kind, name, where in declared:
        if kind == "file":
            rel = _rel(where, name)
            found = rel if _ENTRY.fullmatch(rel) and (tree / rel).is_file() else None
        else:
            found = _module_file(tree, name, where)
        if found is None:
            raise DagopsError(
                f"The project in {folder or 'the repository root'} names {name!r} for Dagster, but the "
                f"repository has no such {'file' if kind == 'file' else 'module'} there"
                f"{'' if kind == 'file' else ' (looked in the folder and its src/)'}."
            )
        entries.append(found)
    if entries:
        return list(dict.fromkeys(entries))
    here = tree / folder if folder else tree
    if (here / DEFAULT_ENTRY).is_file():
        return [_rel(folder, DEFAULT_ENTRY)]
    return sorted(
        _rel(folder, str(p.relative_to(here)))
        for pattern in (f"*/{DEFAULT_ENTRY}", f"src/*/{DEFAULT_ENTRY}")
        for p in here.glob(pattern)
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(here).parts)
        and p.parent.name not in _SKIP_DIRS
    )


def find_projects(tree: Path) -> dict[str, list[str]]:
    """Folders below the root (depth <= PROJECT_SEARCH_DEPTH) that are Dagster projects: folder ->
    its Definitions files. A project is a folder with pyproject.toml, setup.py, setup.cfg, dg.toml,
    dagster_cloud.yaml or workspace.yaml whose rule (:func:`_entries_in`) finds a file."""
    markers = ("pyproject.toml", "setup.py", "setup.cfg", "dg.toml", "dagster_cloud.yaml", "workspace.yaml")
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        depth = len(here.relative_to(tree).parts)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if depth < PROJECT_SEARCH_DEPTH
            and not d.startswith((".", "_"))
            and d not in _SKIP_DIRS
            and d not in ("venv", "env")
        )
        if depth == 0 or not any(m in filenames for m in markers):
            continue
        folder = here.relative_to(tree).as_posix()
        try:
            entries = _entries_in(tree, folder)
        except DagopsError:
            continue  # reported when the folder is picked with --path
        if entries:
            found[folder] = entries
    return found


def find_entry(tree: Path, entry: str | None = None, path: str | None = None) -> str:
    """The file defining the repository's Definitions, relative to ``tree``.

    Rule, first match wins:
      1. ``entry`` when given (must exist; relative to the repository root);
      2. the project in ``path`` when given, else at the root (:func:`_entries_in`: what pyproject's
         ``[tool.dagster]`` / ``[tool.dg.project]``, dg.toml, dagster_cloud.yaml or workspace.yaml name,
         else ``definitions.py``, else the only ``<package>/definitions.py`` or ``src/<package>/...``);
      3. without ``path`` and nothing at the root: the only project in a subfolder (:func:`find_projects`).
    Several candidates are an error that lists them and says how to pick one.
    """
    if entry is not None:
        validate_entry(entry)
        if not (tree / entry).is_file():
            raise DagopsError(f"The repository has no file {entry!r} (given with --entry).")
        return entry
    if path is not None:
        validate_path(path)
        if not (tree / path).is_dir():
            raise DagopsError(f"The repository has no folder {path!r} (given with --path).")
    folder = path or ""
    entries = _entries_in(tree, folder)
    where = f"{folder}/" if folder else "the repository root"
    if len(entries) == 1:
        return entries[0]
    if entries:
        raise DagopsError(
            f"{where} has several Definitions files ({', '.join(entries)}); choose one with --entry FILE."
        )
    if path is None:
        projects = find_projects(tree)
        every = [e for found in projects.values() for e in found]
        if len(every) == 1:
            return every[0]
        if projects:
            listed = ", ".join(f"{folder}/ ({', '.join(found)})" for folder, found in projects.items())
            raise DagopsError(
                f"The repository holds several Dagster projects: {listed}; choose one with --path FOLDER "
                "(add the repository once per project, each under its own --name)."
            )
    raise DagopsError(
        f"No Dagster Definitions found in {where}: expected definitions.py, <package>/definitions.py, "
        "a [tool.dagster] module_name or [tool.dg.project] in pyproject.toml, or a dagster_cloud.yaml "
        "(name the project's folder with --path, or the file with --entry)."
    )


def check_tree(tree: Path) -> None:
    """Refuse trees with symlinks that point outside them (their target would be uploaded)."""
    top = tree.resolve()
    for dirpath, dirnames, filenames in os.walk(tree):
        if ".git" in dirnames and Path(dirpath) == tree:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(top):
                raise DagopsError(
                    f"The repository's {path.relative_to(tree)} is a symlink to outside the repository; "
                    "remove it."
                )


def check_loads(tree: Path, entry: str, env: dict[str, str] | None = None, name: str | None = None) -> None:
    """Load ``entry`` in a separate Python process exactly as the code server will
    (``python -m dagops.sync.loadcheck``); ``env``: the location's environment (``location_env``), of
    which only what untrusted code may see is passed on (``dagops.untrusted.untrusted_env``)."""
    cmd = [sys.executable, "-m", "dagops.sync.loadcheck", str(tree), entry, *([name] if name else [])]
    with tempfile.TemporaryDirectory(prefix="dagops-loadcheck-") as home:
        # The repository's code: none of the operator's secrets (AWS, database, DAGOPS_* settings).
        env = untrusted_env(Path(home), base=os.environ if env is None else env)
        env["DAGSTER_HOME"] = home
        try:
            proc = subprocess.run(
                cmd, cwd=home, env=env, capture_output=True, text=True, timeout=LOADCHECK_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise DagopsError(f"Importing {entry} took longer than {LOADCHECK_TIMEOUT} s.") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise DagopsError(f"The repository's Definitions do not load: {detail.rstrip('.')}.")


# --------------------------------------------------------------------------- add / update / remove


def repos_dir(root: Path) -> Path:
    return root / REPOS_DIR


def _publish(s3: Any, bucket: str | None, name: str, tree: Path, entry: str, log: Log) -> None:
    from dagops.publish import publish_location

    if s3 is None or not bucket:
        log("no upload: the local stack is not running (`invoke dev` publishes every registered location)")
        return
    log(f"uploading to s3://{bucket}/dags/{name}/")
    result = publish_location(s3, bucket, name, tree, entry=entry)
    log(f"uploaded: {result.summary()}")


def _unpublish(s3: Any, bucket: str | None, name: str, log: Log) -> None:
    from dagops.publish import unpublish_location

    if s3 is None or not bucket:
        return
    log(f"removing s3://{bucket}/dags/{name}/")
    unpublish_location(s3, bucket, name)


def _prepare(
    url: str,
    ref: str | None,
    entry: str | None,
    work: Path,
    root: Path,
    log: Log,
    path: str | None = None,
    name: str | None = None,
) -> tuple[str, str, str]:
    """Clone into ``work``, find and load-check the Definitions; return (ref, commit, entry)."""
    ref, commit = clone(url, ref, work)
    log(f"cloned {ref} at {commit[:12]}")
    entry = _check_project(work, entry, path, work.parent / "check", root, log, name, commit)
    return ref, commit, entry


def _check_project(
    tree: Path,
    entry: str | None,
    path: str | None,
    scratch: Path,
    root: Path,
    log: Log,
    name: str | None,
    commit: str,
) -> str:
    """Find the Definitions of the project in ``tree`` and load-check them on a copy (``scratch``);
    return the entry. ``tree`` must be unchanged by the check."""
    check_tree(tree)
    entry = find_entry(tree, entry, path)
    before = {rel: item for rel, (_path, item) in scan(tree).items()}
    # The repository's code runs on a copy: what it writes (files, links to outside) is never published.
    shutil.copytree(tree, scratch, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    try:
        target = resolve_target(scratch, entry)
        env = location_env(scratch, state_dir(root) / "code", log=log, entry=entry)
        log(f"checking that {target.describe()} loads (commit {commit[:12]})")
        check_loads(scratch, entry, env, name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if {rel: item for rel, (_path, item) in scan(tree).items()} != before:
        raise DagopsError(
            "The repository's files changed while its code was being checked; refusing to publish them."
        )
    return entry


def _check_prefix_free(s3: Any, bucket: str | None, name: str) -> None:
    """Refuse a name whose S3 prefix holds files: a failed add must never delete what it did not write."""
    if s3 is None or not bucket:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = s3.list_objects_v2(Bucket=bucket, Prefix=f"dags/{name}/", MaxKeys=1).get("KeyCount", 0)
    except (ClientError, BotoCoreError) as exc:
        raise DagopsError(f"Cannot list s3://{bucket}/dags/{name}/: {str(exc).splitlines()[0]}.") from None
    if found:
        raise DagopsError(
            f"s3://{bucket}/dags/{name}/ already holds files of an unregistered location; "
            "choose another name or remove them first."
        )


def _work_dir(root: Path, name: str) -> Path:
    # Beside repos/ (same file system, so moving it into place is one rename), hidden, and private.
    return Path(tempfile.mkdtemp(dir=root, prefix=f".repo-{name}-"))


def add(
    name: str,
    url: str,
    *,
    s3: Any,
    bucket: str | None,
    ref: str | None = None,
    entry: str | None = None,
    path: str | None = None,
    root: Path | None = None,
    log: Log = print,
) -> registry.Location:
    """Clone, check, upload and register an external repository (or its project in folder ``path``)
    as code location ``name``."""
    root = root or repo_root()
    _check_name_free(name, root, registry.load(root))
    validate_url(url)
    if ref is not None:
        validate_ref(ref)
    if entry is not None:
        validate_entry(entry)
    if path is not None:
        path = validate_path(path)
    _check_prefix_free(s3, bucket, name)
    log(f"adding {name}: {url}" + (f" at {ref}" if ref else ""))
    locations = registry.load(root)
    shared = shared_clone(url, ref, locations, root, log)
    clone_dir = root / REPOS_DIR / name
    if (clone_dir.exists() or clone_dir.is_symlink()) and (
        shared is None or shared.source != f"{REPOS_DIR}/{name}"
    ):
        users = ", ".join(loc.name for loc in locations if loc.source == f"{REPOS_DIR}/{name}")
        raise DagopsError(f"{REPOS_DIR}/{name} holds the clone that {users} uses; choose another name.")
    if shared is not None:
        return _add_shared(name, shared, s3=s3, bucket=bucket, entry=entry, path=path, root=root, log=log)
    work = _work_dir(root, name)
    tree = work / "tree"
    dest = repos_dir(root) / name
    made_repos_dir = uploaded = moved = False
    try:
        ref, commit, entry = _prepare(url, ref, entry, tree, root, log, path, name)
        uploaded = True
        _publish(s3, bucket, name, tree, entry, log)
        locations = registry.load(root)
        _check_name_free(name, root, locations)  # someone may have taken it meanwhile
        if not repos_dir(root).is_dir():
            repos_dir(root).mkdir()
            made_repos_dir = True
        os.rename(tree, dest)
        moved = True
        location = registry.Location(
            name=name, source=f"{REPOS_DIR}/{name}", entry=entry, url=url, ref=ref, commit=commit
        )
        registry.save([*locations, location], root)
    except BaseException:
        if moved:
            os.rename(dest, tree)
        if made_repos_dir:
            repos_dir(root).rmdir()
        if uploaded:
            _undo_upload(s3, bucket, name, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"added {name}: {url} at {ref} ({commit[:12]}), entry {entry}")
    return location


def shared_clone(
    url: str, ref: str | None, locations: list[registry.Location], root: Path, log: Log = print
) -> registry.Location | None:
    """The registered location whose clone a new location of ``url`` at ``ref`` (the default branch when
    None) shares: same URL, same ref, clone present and at the ref's newest commit (``git ls-remote``, no
    clone). None when there is none: the new location gets a fresh clone of the newest commit."""
    same_url = [loc for loc in locations if loc.url == url and loc.ref and loc.path(root).is_dir()]
    if not same_url:
        return None
    wanted = ref or default_branch(url)
    same_ref = [loc for loc in same_url if loc.ref == wanted]
    if not same_ref:
        return None
    newest = remote_commit(url, wanted)
    current = next((loc for loc in same_ref if loc.commit == newest), None)
    if current is None:
        log(
            f"the clone of {same_ref[0].name} is behind {wanted}: cloning afresh "
            f"(`invoke repo.update {same_ref[0].name}` first lets the two share one clone)"
        )
    return current


def _add_shared(
    name: str,
    shared: registry.Location,
    *,
    s3: Any,
    bucket: str | None,
    entry: str | None,
    path: str | None,
    root: Path,
    log: Log,
) -> registry.Location:
    """Add location ``name`` from the clone ``shared`` already uses (same URL and ref, its commit):
    check its project, upload, register with the same source. Nothing is cloned or moved."""
    commit = shared.commit or ""
    log(f"sharing the clone {shared.source} (of {shared.name}) at {commit[:12]} ({shared.ref})")
    work = _work_dir(root, name)
    uploaded = False
    try:
        tree = shared.path(root)
        entry = _check_project(tree, entry, path, work / "check", root, log, name, commit)
        uploaded = True
        _publish(s3, bucket, name, tree, entry, log)
        locations = registry.load(root)
        _check_name_free(name, root, locations)  # someone may have taken it meanwhile
        if not any(loc.url == shared.url and loc.source == shared.source for loc in locations):
            raise DagopsError(f"{shared.source} was removed while {name} was being added; add it again.")
        location = dataclasses.replace(shared, name=name, entry=entry, extra={})
        registry.save([*locations, location], root)
    except BaseException:
        if uploaded:
            _undo_upload(s3, bucket, name, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"added {name}: {shared.url} at {shared.ref} ({commit[:12]}), entry {entry}, clone {shared.source}")
    return location


def _undo_upload(s3: Any, bucket: str | None, name: str, log: Log) -> None:
    try:
        _unpublish(s3, bucket, name, log)
    except Exception as exc:  # the original error matters more; say what is left behind
        log(f"warning: could not remove s3://{bucket}/dags/{name}/ after the failure ({exc})")


def external(name: str, root: Path) -> registry.Location:
    """The registered location ``name``, which must be an external repository."""
    validate_location_name(name)
    location = registry.get(name, root)
    if not location.url:
        raise DagopsError(
            f"{name!r} is one of the project's own code locations ({location.source}), "
            "not an external repository."
        )
    return location


def sharing(location: registry.Location, locations: list[registry.Location]) -> list[registry.Location]:
    """The external locations that use ``location``'s clone, ``location`` first."""
    others = [loc for loc in locations if loc.url and loc.source == location.source and loc != location]
    return [location, *others]


def update(
    name: str, *, s3: Any, bucket: str | None, root: Path | None = None, log: Log = print
) -> registry.Location:
    """Fetch the newest commit of the location's ref, check it, redeploy it and record the commit.

    Every location that shares the clone moves with it: each is checked at the new commit before any
    is uploaded, and the update is refused, naming the one that fails, unless all of them load."""
    root = root or repo_root()
    current = external(name, root)
    group = sharing(current, registry.load(root))
    dest = current.path(root)
    tracked = current.ref if current.ref and current.ref != "HEAD" else None
    also = f" (with {', '.join(loc.name for loc in group[1:])})" if group[1:] else ""
    if dest.is_dir() and current.commit and remote_commit(current.url or "", tracked) == current.commit:
        log(f"{name}{also} is up to date at {current.commit[:12]} ({current.ref or 'HEAD'})")
        return current
    work = _work_dir(root, name)
    tree, old = work / "tree", work / "old"
    published: list[registry.Location] = []
    swapped = False
    try:
        ref, commit, entry = _prepare(current.url or "", tracked, current.entry, tree, root, log, name=name)
        if commit == current.commit and dest.is_dir():
            log(f"{name}{also} is up to date at {commit[:12]} ({ref})")
            return current
        _check_sharers(group[1:], name, tree, work / "check", root, log, commit)
        for loc in group:
            published.append(loc)
            _publish(s3, bucket, loc.name, tree, entry if loc is current else loc.entry, log)
        if dest.exists():
            os.rename(dest, old)
        os.rename(tree, dest)
        swapped = True
        names = {loc.name for loc in group}
        locations = [
            dataclasses.replace(loc, commit=commit, ref=ref) if loc.name in names else loc
            for loc in registry.load(root)
        ]
        registry.save(locations, root)
    except BaseException:
        if swapped:
            os.rename(dest, tree)
            if old.exists():
                os.rename(old, dest)
        for loc in published if dest.is_dir() else []:
            _restore_upload(s3, bucket, loc.name, dest, tree, loc.entry, log)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"updated {name}{also}: {(current.commit or '?')[:12]} -> {commit[:12]} ({ref})")
    return registry.get(name, root)


def _check_sharers(
    others: list[registry.Location], name: str, tree: Path, scratch: Path, root: Path, log: Log, commit: str
) -> None:
    """Load-check, at the new commit in ``tree``, every other location sharing ``name``'s clone."""
    for loc in others:
        try:
            _check_project(tree, loc.entry, None, scratch, root, log, loc.name, commit)
        except DagopsError as exc:
            raise DagopsError(
                f"Not updating {name}: {loc.name} shares its clone and would not load at {commit[:12]} "
                f"({str(exc).rstrip('.')})."
            ) from None


def _restore_upload(
    s3: Any, bucket: str | None, name: str, previous: Path, attempted: Path, entry: str, log: Log
) -> None:
    """After a failed update upload: put the previous commit's files back, so S3 matches the registry.

    Files that changed between the two commits may already hold the new content under the old
    manifest; they are deleted first, so the republish uploads them again whatever their size.
    """
    from dagops.manifest import build

    try:
        old_files = build(name, previous, entry)[0].files
        new_files = build(name, attempted, entry)[0].files if attempted.is_dir() else {}
        changed = sorted(
            rel for rel, item in old_files.items() if rel in new_files and new_files[rel] != item
        )
        if s3 is not None and bucket and changed:
            s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": f"dags/{name}/{rel}"} for rel in changed], "Quiet": True},
            )
        _publish(s3, bucket, name, previous, entry, log)
    except Exception as exc:  # the update's own error is the one to report
        log(
            f"warning: could not restore the previous upload of {name} ({exc}); "
            "run `invoke repo.update` again"
        )


def remove(
    name: str,
    *,
    s3: Any,
    bucket: str | None,
    root: Path | None = None,
    log: Log = print,
    local_copy: Path | None = None,
) -> None:
    """Remove the upload (manifest first), then the registration, then the clone, then ``local_copy``
    (a stopped local stack's synced releases of the location; a running stack deletes its own).

    In this order an interrupted removal can always be finished by running it again: the location
    stays registered until its upload is gone, and the clone goes last.
    """
    root = root or repo_root()
    location = external(name, root)
    _unpublish(s3, bucket, name, log)
    remaining = [loc for loc in registry.load(root) if loc.name != name]
    registry.save(remaining, root)
    clone_dir = location.path(root)
    users = [loc.name for loc in remaining if loc.url and loc.source == location.source]
    if users:
        log(f"kept {location.source}: {', '.join(users)} still uses it")
    elif clone_dir.exists():
        aside = Path(tempfile.mkdtemp(dir=root, prefix=f".repo-{name}-")) / "old"
        os.rename(clone_dir, aside)
        shutil.rmtree(aside.parent, ignore_errors=True)
    if local_copy is not None and local_copy.name == name:
        shutil.rmtree(local_copy, ignore_errors=True)
    log(f"removed {name}")


def restore(root: Path | None = None, log: Log = print) -> list[str]:
    """Clone every registered repository missing from repos/ at its recorded commit (a fresh checkout,
    a CI job): what dags.deploy publishes is then exactly what was added or last updated."""
    root = root or repo_root()
    restored = []
    for location in registry.load(root):
        dest = location.path(root)
        if not location.url or dest.exists():
            continue
        validate_url(location.url)
        log(f"restoring {location.name} at {(location.commit or '?')[:12]} from {location.url}")
        work = _work_dir(root, location.name)
        try:
            clone_commit(location.url, location.commit or "", work / "tree")
            repos_dir(root).mkdir(exist_ok=True)
            os.rename(work / "tree", dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        restored.append(location.name)
    return restored


# --------------------------------------------------------------------------- list / logs


def sync_status(code_dir: Path | None, name: str) -> str:
    """A short sync status from the agent's ``<code_dir>/<name>/status.json`` ('-' when there is none)."""
    if code_dir is None:
        return "-"
    path = code_dir / name / "status.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return "not synced"
    except (OSError, ValueError):
        return "unreadable status"
    if not isinstance(data, dict):
        return "unreadable status"
    state = str(data.get("state") or data.get("status") or "?")
    revision = data.get("revision")
    error = data.get("error") or data.get("last_error")
    parts = [state]
    if revision:
        parts.append(str(revision)[:12])
    if error:
        parts.append(str(error).splitlines()[0][:80])
    return " ".join(parts)


def list_repos(root: Path | None = None, code_dir: Path | None = None) -> list[RepoStatus]:
    """Every external repository in the registry, with its sync status when a local stack has one."""
    root = root or repo_root()
    return [
        RepoStatus(
            loc.name, loc.url or "", loc.ref or "", (loc.commit or "")[:12], sync_status(code_dir, loc.name)
        )
        for loc in registry.load(root)
        if loc.url
    ]


def format_table(rows: list[RepoStatus]) -> str:
    if not rows:
        return (
            "No external repositories are registered (add one with `invoke repo.add --url URL --name NAME`)."
        )
    header = ("NAME", "URL", "REF", "COMMIT", "SYNC")
    table = [header, *((r.name, r.url, r.ref, r.commit, r.sync) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    )


def follow_file(path: Path, *, follow: bool, poll: float = 0.5) -> Iterator[str]:
    """Lines of a local log file; with ``follow``, keep yielding new lines as they are written."""
    import time

    if not path.is_file():
        raise DagopsError(f"No log file {path} yet; is the local stack running (`invoke dev`)?")
    with path.open(errors="replace") as fh:
        while True:
            line = fh.readline()
            if line:
                yield line.rstrip("\n")
            elif follow:
                time.sleep(poll)
            else:
                return


def cloudwatch_lines(
    logs: Any, group: str, *, follow: bool, since_ms: int, poll: float = 2.0
) -> Iterator[str]:
    """Events of a CloudWatch log group since ``since_ms``; with ``follow``, keep polling for new ones."""
    import time

    seen: set[str] = set()
    start = since_ms
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "interleaved": True}
        try:
            while True:
                page = logs.filter_log_events(**kwargs)
                for event in page.get("events", []):
                    if event["eventId"] in seen:
                        continue
                    seen.add(event["eventId"])
                    start = max(start, int(event["timestamp"]))
                    yield f"{event.get('logStreamName', '')} {event['message'].rstrip()}"
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except logs.exceptions.ResourceNotFoundException:
            raise DagopsError(
                f"The log group {group} does not exist; has the environment been applied?"
            ) from None
        if not follow:
            return
        time.sleep(poll)


# --------------------------------------------------------------------------- where the code goes


@dataclass(frozen=True)
class Target:
    """Where repo.add/update/remove upload: a bucket of an environment, the local stack's, or nowhere."""

    s3: Any
    bucket: str | None
    where: str
    code_dir: Path | None = None
    logs_dir: Path | None = None


def local_target(dev_settings: dict[str, Any] | None = None) -> Target:
    """The running local stack's S3 endpoint and bucket; with no stack running, no upload at all.

    The local S3 endpoint keeps objects in memory only: a stack that starts later publishes every
    registered location itself, so there is nothing to upload to while it is down.
    """
    from dagops.localstack import s3 as local_s3
    from dagops.localstack.config import DevConfig
    from dagops.localstack.stack import read_state, running_pid

    config = DevConfig.resolve(dev_settings or {})
    if running_pid(config) is None:
        return Target(None, None, "local stack (not running)", None, config.logs_dir)
    state = read_state(config)
    endpoint = state.get("s3_endpoint") or config.s3_endpoint
    bucket = state.get("bucket") or config.bucket
    return Target(
        local_s3.client(endpoint), bucket, f"local stack ({endpoint})", config.code_dir, config.logs_dir
    )


def env_target(env: str, root: Path | None = None) -> Target:
    """The bucket of a deployed environment, from its tofu outputs."""
    import boto3

    from dagops import outputs

    values = outputs.load(env, root)
    bucket = outputs.require(values, "bucket_name", env)
    region = values.get("region") or None
    return Target(boto3.client("s3", region_name=region), str(bucket), f"environment {env}")


def env_log_group(env: str, name: str, root: Path | None = None) -> tuple[Any, str]:
    """A CloudWatch Logs client and the log group of location ``name`` in environment ``env``."""
    import boto3

    from dagops import outputs

    values = outputs.load(env, root)
    groups = outputs.require(values, "log_group_names", env)
    group = groups.get(f"code-{name}") if isinstance(groups, dict) else None
    if not group:
        raise DagopsError(
            f"Environment {env!r} has no log group for code location {name!r}; "
            f"run `invoke infra.apply --env {env}` after adding the repository."
        )
    return boto3.client("logs", region_name=values.get("region") or None), str(group)
