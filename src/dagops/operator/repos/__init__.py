"""External git repositories as code locations: add, update, remove, restore, list.

A repository becomes a code location in this order, and nothing is written before the checks pass:

1. the name, URL, ref and entry are validated (:mod:`.validate`: no git or shell ever sees an unchecked
   string);
2. the repository is cloned shallow into a private directory beside ``repos/`` (:mod:`.git`), unless a
   registered location already has a clone of the same URL and ref, which the new location then shares;
3. its Definitions are found (:mod:`.projects`), its requirements installed (cached), and the entry is
   import-checked in a separate Python process (:mod:`.check`);
4. the tree is uploaded to ``dags/<name>/`` (manifest last);
5. the clone is moved to ``repos/<name>`` and the registry is saved (last) (:mod:`.lifecycle`).

A failure in any step undoes the earlier ones: the upload is removed, the clone deleted, the registry
left byte-for-byte as it was. :mod:`.table` lists the repositories, :mod:`.target` says where uploads go;
:mod:`.logs` shows a location's logs with the project's own readers.
"""

from dagops.operator.repos.check import check_loads, check_tree
from dagops.operator.repos.git import clone, clone_commit, default_branch, git, remote_commit
from dagops.operator.repos.logs import env_logs, local_logs
from dagops.operator.repos.lifecycle import add, external, remove, restore, shared_clone, sharing, update
from dagops.operator.repos.projects import find_entry, find_projects
from dagops.operator.repos.table import RepoStatus, format_table, list_repos, sync_status
from dagops.operator.repos.target import Target, env_target, local_target
from dagops.operator.repos.validate import validate_entry, validate_path, validate_ref, validate_url

__all__ = [
    "RepoStatus",
    "Target",
    "add",
    "check_loads",
    "check_tree",
    "clone",
    "clone_commit",
    "default_branch",
    "env_logs",
    "env_target",
    "external",
    "find_entry",
    "find_projects",
    "format_table",
    "git",
    "list_repos",
    "local_logs",
    "local_target",
    "remote_commit",
    "remove",
    "restore",
    "shared_clone",
    "sharing",
    "sync_status",
    "update",
    "validate_entry",
    "validate_path",
    "validate_ref",
    "validate_url",
]
