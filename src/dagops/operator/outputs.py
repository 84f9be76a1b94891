"""Settings of a deployed environment, read from its tofu outputs (never hard-coded names)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.names import validate_env_name
from dagops.paths import repo_root

# A file written by `tofu output -json > FILE`: lets a CI job without state access (or a laptop
# without backend credentials) use the outputs another job exported.
OUTPUTS_FILE_VAR = "DAGOPS_TF_OUTPUTS_FILE"


def tofu_binary() -> str:
    """`tofu` if it is on PATH, else `terraform`; raise when neither is."""
    for name in ("tofu", "terraform"):
        if shutil.which(name):
            return name
    raise DagopsError("Neither tofu nor terraform is on PATH; install OpenTofu (https://opentofu.org).")


def _flatten(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()}


def _first_error(stderr: str) -> str:
    """The first ``Error:`` line of tofu's stderr (warnings come before it), without the prefix."""
    for line in stderr.splitlines():
        if line.strip().startswith("Error:"):
            return line.strip().removeprefix("Error:").strip().rstrip(".")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def load(env: str, root: Path | None = None) -> dict[str, Any]:
    """The outputs of live/<env> as a plain dict (name -> value)."""
    root = root or repo_root()
    validate_env_name(env, root / "live")
    from dagops import settings  # here: pydantic stays out of `invoke --list`

    exported = settings.load(settings.OperatorSettings).outputs_file
    if exported:
        try:
            return _flatten(json.loads(Path(exported).read_text()))
        except (OSError, ValueError) as exc:
            raise DagopsError(
                f"Cannot read tofu outputs from {exported} ({OUTPUTS_FILE_VAR}): {exc}."
            ) from None
    binary = tofu_binary()
    proc = subprocess.run(
        [binary, f"-chdir={root / 'live' / env}", "output", "-json", "-no-color"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DagopsError(
            f"Cannot read the outputs of environment {env!r} ({binary} output: {_first_error(proc.stderr)}); "
            f"run `invoke infra.init --env {env}` (and `infra.apply`) first, or set {OUTPUTS_FILE_VAR}."
        )
    data = _flatten(json.loads(proc.stdout or "{}"))
    if not data:
        raise DagopsError(
            f"Environment {env!r} has no outputs yet; run `invoke infra.apply --env {env}` first."
        )
    return data


def require(outputs: dict[str, Any], name: str, env: str) -> Any:
    """One output by name, or a clear error naming what is missing."""
    value = outputs.get(name)
    if value in (None, "", {}, []):
        raise DagopsError(f"Environment {env!r} has no output {name!r}; apply its tofu root first.")
    return value
