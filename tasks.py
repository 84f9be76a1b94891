"""Command layer: `invoke --list` is the menu. Each area lives in src/dagops/operator/tasks/<area>.py.

The menu lists each task once, under its area (`dags.deploy`). The original design's make targets (each
module's ``ALIASES``, such as ``deploy-dags``; README names them) are still accepted: each is a
`MakeTarget`, a collection of that name whose default is the task, which `--list` does not print.
"""

from __future__ import annotations

from typing import Any

from invoke import Collection, Task

from dagops.operator.tasks import cost, dags, deploy, dev, image, infra, repo
from dagops.operator.tasks.deploy import env_ns


class MakeTarget(Collection):
    """``invoke <name>`` runs ``task``; the task stays out of ``tasks``, which is what `--list` prints.

    invoke's parser knows a collection's name as an alias of its default task (`Collection.task_names`),
    and its loader copies the root's sub-collections as they are (subclass included), so this hides
    the second name from the menu without touching invoke's program.
    """

    TASK = "run"

    def __init__(self, name: str, task: Task) -> None:
        super().__init__(name)
        self.target = task
        self.default = self.TASK

    @property
    def task_names(self) -> dict[str, list[str]]:
        return {self.TASK: []}

    def task_with_config(self, name: str | None) -> tuple[Any, dict[str, Any]]:
        if name not in ("", None, self.TASK):
            raise KeyError(name)
        return self.target, self.configuration()


ns = Collection()
for module in (dev, dags, repo, infra, image, deploy, cost):
    ns.add_collection(module.ns)
    for alias, task in getattr(module, "ALIASES", {}).items():
        ns.add_collection(MakeTarget(alias, task))
ns.add_collection(env_ns)
