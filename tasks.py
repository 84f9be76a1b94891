"""Command layer: `invoke --list` is the menu. Each area lives in src/dagops/tasks/<area>.py."""

from invoke import Collection

from dagops.tasks import cost, dags, deploy, dev, image, infra, repo
from dagops.tasks.deploy import env_ns

ns = Collection()
for module in (dev, dags, repo, infra, image, deploy, cost):
    ns.add_collection(module.ns)
    for alias, task in getattr(module, "ALIASES", {}).items():
        ns.add_task(task, name=alias)
ns.add_collection(env_ns)
