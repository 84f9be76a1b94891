"""fmt and validate for every module and root, and the layering rules the roots follow."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tfharness import CONTRACT_OUTPUTS, REPO, Tofu, copy_tree

from dagops.errors import DagopsError
from dagops.names import validate_env_name
from dagops.operator import cost, infra

MODULES = sorted(p.name for p in (REPO / "modules").iterdir() if (p / "main.tf").is_file())
# live/_shared holds the definition the environment roots link to; it is not a root of its own.
ROOTS = sorted(
    p.name for p in (REPO / "live").iterdir() if (p / "main.tf").is_file() and not p.name.startswith("_")
)
ENV_ROOTS = [r for r in ROOTS if r != "bootstrap"]
SHARED = REPO / "live" / "_shared"
SHARED_FILES = ("main.tf", "variables.tf", "outputs.tf", "providers.tf", "versions.tf", "backend.tf")
PER_ENV_FILES = {"terraform.tfvars", "backend.hcl", ".terraform.lock.hcl", "README.md"}


def blocks(text: str, kind: str) -> dict[str, str]:
    """Top-level ``kind "name" { ... }`` blocks of an HCL file, by name (brace counting, strings aware)."""
    found: dict[str, str] = {}
    for match in re.finditer(rf'^{kind} "([^"]+)" \{{', text, flags=re.M):
        depth, i, in_string = 0, match.end() - 1, False
        while i < len(text):
            ch = text[i]
            if ch == '"' and text[i - 1] != "\\":
                in_string = not in_string
            elif not in_string and ch == "{":
                depth += 1
            elif not in_string and ch == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        found[match.group(1)] = text[match.start() : i + 1]
    return found


def test_there_are_modules_and_roots() -> None:
    assert {"network", "storage", "database", "secrets", "iam", "ecr", "ecs-cluster", "ecs-service"} <= set(
        MODULES
    )
    assert {"dev", "prod", "bootstrap"} <= set(ROOTS)


def test_fmt_check(tofu: Tofu) -> None:
    proc = tofu.run("fmt", "-check", "-recursive", "-diff", "modules", "live", cwd=REPO, check=False)
    assert proc.returncode == 0, f"not formatted (run `tofu fmt -recursive modules live`):\n{proc.stdout}"


@pytest.fixture(scope="session")
def validated(tofu: Tofu, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`init -backend=false` + `validate -json` of every module and root, two at a time."""
    tree = copy_tree(tmp_path_factory.mktemp("validate"))
    folders = [tree / "modules" / m for m in MODULES] + [tree / "live" / r for r in ROOTS]

    def validate(folder: Path) -> tuple[str, dict]:
        tofu.run("init", "-backend=false", "-input=false", "-no-color", cwd=folder)
        proc = tofu.run("validate", "-json", "-no-color", cwd=folder, check=False)
        return f"{folder.parent.name}/{folder.name}", json.loads(proc.stdout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(validate, folders))


@pytest.mark.parametrize("folder", [f"modules/{m}" for m in MODULES] + [f"live/{r}" for r in ROOTS])
def test_validate(validated: dict[str, dict], folder: str) -> None:
    result = validated[folder]
    problems = [f"{d['severity']}: {d['summary']}: {d.get('detail', '')}" for d in result["diagnostics"]]
    assert result["valid"], problems
    assert result["error_count"] == 0 and result["warning_count"] == 0, problems


@pytest.mark.parametrize("module", MODULES)
def test_module_layout(module: str) -> None:
    folder = REPO / "modules" / module
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (folder / name).is_file(), f"modules/{module}/{name} is missing"
    assert "required_version" in (folder / "versions.tf").read_text()


@pytest.mark.parametrize("folder", [f"modules/{m}" for m in MODULES] + [f"live/{r}" for r in ROOTS])
def test_every_variable_is_typed_and_described(folder: str) -> None:
    path = REPO / folder / "variables.tf"
    variables = blocks(path.read_text(), "variable")
    for name, body in variables.items():
        assert re.search(r"^\s+type\s+=", body, flags=re.M), f"{folder}: variable {name} has no type"
        assert re.search(r'^\s+description\s+=\s+"\S', body, flags=re.M), (
            f"{folder}: variable {name} has no description"
        )


@pytest.mark.parametrize("env", ENV_ROOTS)
def test_env_root_links_the_shared_definition(env: str) -> None:
    root = REPO / "live" / env
    for name in SHARED_FILES:
        path = root / name
        assert path.is_symlink(), f"live/{env}/{name} must be a symlink to ../_shared/{name}"
        target = Path(os.readlink(path))
        assert not target.is_absolute(), f"live/{env}/{name} -> {target}: use a relative link"
        assert path.resolve() == (SHARED / name).resolve(), (
            f"live/{env}/{name} -> {target}, not ../_shared/{name}"
        )
    regular = {p.name for p in root.iterdir() if p.is_file() and not p.is_symlink()}
    assert regular <= PER_ENV_FILES, (
        f"live/{env} holds {sorted(regular - PER_ENV_FILES)}; an environment root carries only "
        f"{sorted(PER_ENV_FILES)}, the rest lives in live/_shared (differences go in terraform.tfvars)"
    )
    links = {p.name for p in root.iterdir() if p.is_symlink()}
    assert links == set(SHARED_FILES), f"live/{env} links {sorted(links)}, expected {sorted(SHARED_FILES)}"


def test_shared_is_no_environment() -> None:
    assert (SHARED / "main.tf").is_file()
    assert "_shared" not in infra.environments(REPO)
    assert "_shared" not in cost.environments(REPO)
    assert infra.environments(REPO) == cost.environments(REPO) == ENV_ROOTS
    with pytest.raises(DagopsError, match="environment"):
        validate_env_name("_shared", REPO / "live")


@pytest.mark.parametrize("env", ENV_ROOTS)
def test_env_root_is_thin(env: str) -> None:
    main = (REPO / "live" / env / "main.tf").read_text()
    assert not re.search(r"^resource ", main, flags=re.M), (
        "live roots call modules; resources belong in modules/"
    )
    assert "code_locations/locations.yaml" in main, "code locations come from the registry"
    tfvars = (REPO / "live" / env / "terraform.tfvars").read_text()
    assert re.search(rf'^environment\s+=\s+"{env}"', tfvars, flags=re.M)


@pytest.mark.parametrize("env", ENV_ROOTS)
def test_backend_is_partial_s3_with_one_key_per_environment(env: str) -> None:
    root = REPO / "live" / env
    assert re.search(r'backend "s3" \{\s*\}', (root / "backend.tf").read_text())
    hcl = (root / "backend.hcl").read_text()
    assert re.search(rf'^key\s+=\s+"dagops/{env}/terraform.tfstate"', hcl, flags=re.M)
    assert re.search(r"^use_lockfile\s+=\s+true", hcl, flags=re.M)
    assert re.search(r"^encrypt\s+=\s+true", hcl, flags=re.M)
    assert re.search(r'^region\s+=\s+"ap-southeast-2"', hcl, flags=re.M)


@pytest.mark.parametrize("root", ROOTS)
def test_provider_guards_account_and_tags(root: str) -> None:
    providers = (REPO / "live" / root / "providers.tf").read_text()
    assert "allowed_account_ids" in providers
    assert "default_tags" in providers


@pytest.mark.parametrize("root", ROOTS)
def test_lock_file_is_committed_and_pins_the_provider(root: str) -> None:
    lock = REPO / "live" / root / ".terraform.lock.hcl"
    assert lock.is_file(), f"live/{root}/.terraform.lock.hcl is missing"
    text = lock.read_text()
    assert re.search(r'provider "registry\.[a-z.]+/hashicorp/aws"', text)
    assert re.search(r'version\s+=\s+"5\.100\.0"', text)
    versions = (REPO / "live" / root / "versions.tf").read_text()
    assert re.search(r'version\s+=\s+"~> 5\.100\.0"', versions)


@pytest.mark.parametrize("env", ENV_ROOTS)
def test_root_outputs_are_the_contract(env: str) -> None:
    outputs = blocks((REPO / "live" / env / "outputs.tf").read_text(), "output")
    assert set(outputs) >= CONTRACT_OUTPUTS
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        assert re.search(r"sensitive\s+=\s+true", outputs[name]), f"{name} must be sensitive"
