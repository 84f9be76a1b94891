"""The task menu: `invoke --list` shows each task once; the original make target names still run."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from invoke import Collection, Program
from invoke.loader import FilesystemLoader

from dagops.operator.tasks import cost, dags, deploy, dev, image, infra, repo

ROOT = Path(__file__).resolve().parents[2]
ALIASES = {
    name: task
    for module in (dev, dags, repo, infra, image, deploy, cost)
    for name, task in module.ALIASES.items()
}


def _invoke(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            Program(binary="invoke").run(["invoke", "--search-root", str(ROOT), *argv], exit=True)
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    return code, out.getvalue()


def _loaded() -> Collection:
    """The root collection as `invoke` loads it (a copy of tasks.ns, made by Collection.from_module)."""
    module, parent = FilesystemLoader(start=str(ROOT)).load("tasks")
    return Collection.from_module(module, loaded_from=parent)


def test_the_menu_lists_each_task_once_and_no_make_target_name() -> None:
    code, out = _invoke("--list")
    assert code == 0, out
    names = re.findall(r"^  (\S+)", out, flags=re.MULTILINE)
    assert "dags.deploy" in names and "repo.add" in names and "infra.plan" in names
    assert len(names) == len(set(names)), names
    assert not set(names) & set(ALIASES), set(names) & set(ALIASES)
    # One line per task object: no command is listed under two names.
    root = _loaded()
    listed = [root[name] for name in names]
    assert len({id(t) for t in listed}) == len(listed)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_each_make_target_name_runs_its_task(alias: str) -> None:
    assert _loaded()[alias] is not None
    assert _loaded()[alias].body is ALIASES[alias].body
    code, out = _invoke("--help", alias)
    assert code == 0, out
    assert f"Usage: invoke [--core-opts] {alias} " in out
    first_line = (ALIASES[alias].__doc__ or "").strip().splitlines()[0]
    assert first_line[:40] in " ".join(out.split()), out


def test_an_unknown_name_is_still_refused() -> None:
    code, out = _invoke("deploy-dagz")
    assert code == 1 and "No idea what 'deploy-dagz' is!" in out


def test_a_make_target_runs_with_its_arguments() -> None:
    # add-repo keeps its make-style arguments; a bad URL gets the one-sentence refusal of repo.add.
    code, out = _invoke("add-repo", "REPO_URL=ftp://x", "REPO_NAME=ok")
    assert code == 1 and "'ftp://x' is not a git URL" in out, out
