"""Checks of what a user gives repo.add (name, URL, ref, entry, folder): no git or shell ever sees an
unchecked string, and a name already used anywhere is refused before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

from dagops import registry
from dagops.errors import DagopsError
from dagops.names import validate_location_name

REPOS_DIR = "repos"
OWN_LOCATIONS_DIR = "code_locations"

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
ENTRY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}\.py")


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
    if not isinstance(entry, str) or not ENTRY_PATTERN.fullmatch(entry) or any(p in ("", ".", "..") for p in parts):
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


def check_name_free(name: str, root: Path, locations: list[registry.Location]) -> None:
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

