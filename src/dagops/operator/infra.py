"""Run OpenTofu (or Terraform) on one environment root under live/: init, plan, apply, destroy, output.

Each ``live/<env>`` root works on its own (`tofu -chdir=live/prod init -backend-config=backend.hcl`);
these functions only add the conveniences: the binary is found for you (tofu first, terraform as a
fallback, and you are told which), the environment name is checked before anything runs, init always
uses the environment's backend.hcl, and destroying a protected environment asks first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dagops.errors import DagopsError
from dagops.names import is_env_root, validate_env_name
from dagops.operator.outputs import tofu_binary
from dagops.paths import repo_root

ACTIONS = ("init", "plan", "apply", "destroy", "output")
# Environments whose destroy needs a typed confirmation (or --yes).
PROTECTED_ENVIRONMENTS = frozenset({"prod"})
BACKEND_CONFIG = "backend.hcl"


@dataclass(frozen=True)
class Step:
    """One tofu invocation: the environment it is for and the argument list."""

    env: str
    args: list[str]

    def display(self, root: Path) -> str:
        shown = [a.replace(str(root) + "/", "") for a in self.args]
        return " ".join(shown)


def live_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "live"


def environments(root: Path | None = None) -> list[str]:
    """Every environment root under live/ (folders with a main.tf; bootstrap and _shared excluded), sorted."""
    base = live_dir(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if is_env_root(p))


def env_root(env: str, root: Path | None = None) -> Path:
    """The folder of environment ``env``, after checking the name and that the folder exists."""
    validate_env_name(env, live_dir(root))
    return live_dir(root) / env


def build(
    action: str,
    env: str,
    *,
    root: Path | None = None,
    binary: str | None = None,
    auto_approve: bool = False,
    json_output: bool = False,
    upgrade: bool = False,
    targets: Sequence[str] = (),
) -> Step:
    """The argument list of ``<binary> -chdir=live/<env> <action> ...``, validated, not run."""
    if action not in ACTIONS:
        raise DagopsError(f"Unknown infra action {action!r}: expected one of {', '.join(ACTIONS)}.")
    folder = env_root(env, root)
    args = [binary or tofu_binary(), f"-chdir={folder}", action]
    if action == "init":
        if not (folder / BACKEND_CONFIG).is_file():
            raise DagopsError(
                f"Environment {env!r} has no {BACKEND_CONFIG}; create {folder / BACKEND_CONFIG} first."
            )
        args += ["-input=false", f"-backend-config={BACKEND_CONFIG}"]
        if upgrade:
            args.append("-upgrade")
    elif action in ("plan", "apply", "destroy"):
        args.append("-input=false")
        if auto_approve and action in ("apply", "destroy"):
            args.append("-auto-approve")
        args += [f"-target={t}" for t in targets]
    elif action == "output" and json_output:
        args.append("-json")
    return Step(env=env, args=args)


def confirm_destroy(
    env: str, ask: Callable[[str], str] | None = None, interactive: bool | None = None
) -> None:
    """Ask the user to type the environment's name before destroying a protected environment."""
    if env not in PROTECTED_ENVIRONMENTS:
        return
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise DagopsError(f"Destroying {env!r} needs --yes when there is no terminal to confirm on.")
    answer = (ask or input)(f"This destroys every resource of environment {env!r}. Type {env!r} to go on: ")
    if answer.strip() != env:
        raise DagopsError(f"Destroy of {env!r} cancelled: the confirmation did not match.")


def mask_sensitive(output_json: str) -> str:
    """``tofu output -json`` with the value of every sensitive output replaced by null.

    `invoke aws-credentials` is the one command that prints a secret; `infra.output --json` keeps the
    shape (and the ``sensitive`` flag) so scripts see which outputs exist.
    """
    try:
        data = json.loads(output_json or "{}")
    except ValueError:
        raise DagopsError("tofu output -json did not print JSON.") from None
    for item in data.values():
        if isinstance(item, dict) and item.get("sensitive"):
            item["value"] = None
    return json.dumps(data, indent=2, sort_keys=True)


def run(step: Step, *, root: Path | None = None, out: TextIO | None = None) -> None:
    """Run one step with the terminal attached (tofu shows its own progress); raise when it fails."""
    root = root or repo_root()
    out = out or sys.stderr
    binary = Path(step.args[0]).name
    print(f"[infra] {step.env}: running {step.display(root)} ({binary})", file=out, flush=True)
    json_output = step.args[2:] == ["output", "-json"]
    try:
        proc = subprocess.run(
            step.args, check=False, stdout=subprocess.PIPE if json_output else None, text=True
        )
    except OSError as exc:
        raise DagopsError(f"Cannot start {binary}: {exc.strerror or exc}.") from None
    code = proc.returncode
    if json_output and code == 0:
        print(mask_sensitive(proc.stdout))
    if code != 0:
        raise DagopsError(f"{binary} {step.args[2]} failed for environment {step.env!r} (exit code {code}).")


def execute(
    action: str,
    envs: Sequence[str],
    *,
    root: Path | None = None,
    yes: bool = False,
    json_output: bool = False,
    upgrade: bool = False,
    targets: Sequence[str] = (),
    ask: Callable[[str], str] | None = None,
    interactive: bool | None = None,
    runner: Callable[[Step], None] | None = None,
    out: TextIO | None = None,
) -> None:
    """Run ``action`` on each environment in turn; every name is checked before the first one runs.

    With several environments a failure does not stop the others (a plan of each is still worth
    seeing); the error at the end names every environment that failed.
    """
    root = root or repo_root()
    out = out or sys.stderr
    if not envs:
        raise DagopsError("No environment given: pass --env ENV (or --all).")
    binary = tofu_binary()
    steps = [
        build(
            action,
            env,
            root=root,
            binary=binary,
            auto_approve=yes,
            json_output=json_output,
            upgrade=upgrade,
            targets=targets,
        )
        for env in envs
    ]
    if action == "destroy" and not yes:
        for env in envs:
            confirm_destroy(env, ask=ask, interactive=interactive)
        # The user has confirmed protected environments here; tofu asks for the others itself.
        steps = [
            build(action, s.env, root=root, binary=binary, auto_approve=s.env in PROTECTED_ENVIRONMENTS)
            for s in steps
        ]
    if binary != "tofu":
        print(f"[infra] OpenTofu (tofu) is not on PATH; using {binary} instead.", file=out, flush=True)
    runner = runner or (lambda step: run(step, root=root, out=out))
    failed: list[str] = []
    for step in steps:
        if len(steps) == 1:
            runner(step)
            continue
        try:
            runner(step)
        except DagopsError as exc:
            print(f"[infra] {step.env}: {exc}", file=out, flush=True)
            failed.append(step.env)
    if failed:
        raise DagopsError(f"{binary} {action} failed for: {', '.join(failed)}.")
