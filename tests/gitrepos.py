"""Git repositories and wheels built by the tests (the repository manager's tests share them).

``Upstream(path)`` is a repository with a ``main`` branch; ``commit(files)`` writes and commits files;
``make_repo(path, files)`` is a one-commit repository's file:// URL. Git runs with a minimal environment:
no global or system configuration, a fixed author, none of the test's (fake) credentials.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

AUTHOR = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its output, stripped (a failure raises CalledProcessError)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        **AUTHOR,
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> text or bytes) under ``root``; returns ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


class Upstream:
    """A git repository made by the test; ``url`` is its file:// URL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "--quiet", "--initial-branch", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def commit(
        self, files: dict[str, str | bytes], message: str = "change", remove: tuple[str, ...] = ()
    ) -> str:
        """Write ``files``, delete ``remove``, commit everything; the new commit id."""
        write_files(self.path, files)
        for rel in remove:
            (self.path / rel).unlink()
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


def make_repo(path: Path, files: dict[str, str | bytes], message: str = "first") -> str:
    """A git repository holding ``files`` in one commit; its file:// URL."""
    repo = Upstream(path)
    repo.commit(files, message)
    return repo.url


def wheel(name: str, version: str, module_source: str, scripts: dict[str, str] | None = None) -> bytes:
    """A minimal pure-Python wheel built in memory (no build backend, no index); ``scripts``: console
    scripts (name -> "module:function")."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if scripts:
        files[f"{info}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{script} = {target}\n" for script, target in scripts.items()
        )
    files[f"{info}/RECORD"] = "".join(f"{rel},,\n" for rel in [*files, f"{info}/RECORD"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return buf.getvalue()
