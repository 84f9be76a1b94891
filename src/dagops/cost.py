"""The monthly bill of an environment, estimated from its configuration (``invoke cost --env prod``).

The configuration is the environment's tofu root: ``live/<env>/*.tf`` variable defaults overlaid by
``live/<env>/terraform.tfvars`` (and ``*.auto.tfvars``), plus the code-location registry for the list of
code-location services. Prices come from ``prices.json`` beside this module (one region, a date and a
source URL per price). Usage that no configuration states (log volume, runs per month, S3 bytes) is an
assumption, printed with the estimate.

The HCL reader here understands what tfvars and ``default =`` hold (strings, numbers, bools, null,
lists, objects, comments, heredocs); any other expression (a reference, a function call) is kept as
"not a literal" and the model falls back to its own default for it, saying so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError
from dagops.names import is_env_root, validate_env_name
from dagops.paths import repo_root

PRICES_FILE = Path(__file__).with_name("prices.json")
# 50 hours a week on (e.g. 10 h x 5 working days), in hours per average month.
WORKING_HOURS_PER_WEEK = 50.0
WEEKS_PER_MONTH = 52.0 / 12.0


# --------------------------------------------------------------------------------------------------
# A minimal HCL reader: enough for tfvars and variable defaults.
# --------------------------------------------------------------------------------------------------


class Opaque:
    """An HCL expression that is not a literal (a reference, a function call, an operator)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Opaque({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<nl>\n)
  | (?P<heredoc><<-?(?P<tag>[A-Za-z_][A-Za-z0-9_]*)[ \t]*\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<punct>==|!=|<=|>=|&&|\|\||=>|\.\.\.|[=:{}\[\](),.?!<>+\-*/%])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    value: Any = None


def _tokenize(text: str, where: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise DagopsError(f"Cannot read {where}: unexpected {text[pos]!r} on line {line}.")
        kind = "heredoc" if m.group("heredoc") else (m.lastgroup or "punct")
        pos = m.end()
        if kind in ("ws", "comment"):
            continue
        if kind == "heredoc":
            tag = m.group("tag")
            end = re.compile(rf"^[ \t]*{re.escape(tag)}[ \t]*$", re.MULTILINE).search(text, pos)
            if not end:
                raise DagopsError(f"Cannot read {where}: heredoc <<{tag} is never closed.")
            body = text[pos : end.start()]
            if m.group(0).startswith("<<-"):
                lines = body.splitlines()
                indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
                body = "\n".join(ln[indent:] for ln in lines) + ("\n" if body.endswith("\n") else "")
            tokens.append(_Tok("string", body, body))
            pos = end.end()
            continue
        raw = m.group(0)
        if kind == "string":
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(1)), raw[1:-1])
            tokens.append(_Tok("string", raw, value))
        elif kind == "number":
            tokens.append(_Tok("number", raw, float(raw) if any(c in raw for c in ".eE") else int(raw)))
        else:
            tokens.append(_Tok(kind or "punct", raw))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Tok], where: str) -> None:
        self.toks = tokens
        self.i = 0
        self.where = where

    def peek(self, skip_nl: bool = False) -> _Tok | None:
        j = self.i
        while skip_nl and j < len(self.toks) and self.toks[j].kind == "nl":
            j += 1
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> _Tok:
        if self.i >= len(self.toks):
            raise DagopsError(f"Cannot read {self.where}: it ends in the middle of a value.")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def skip_nl(self) -> None:
        while self.i < len(self.toks) and self.toks[self.i].kind == "nl":
            self.i += 1

    def expect(self, text: str) -> None:
        tok = self.next()
        if tok.text != text:
            raise DagopsError(f"Cannot read {self.where}: expected {text!r}, found {tok.text!r}.")

    # body := (attribute | block)*
    def body(self, closing: str | None) -> list[tuple[str, str, list[str], Any]]:
        items: list[tuple[str, str, list[str], Any]] = []
        while True:
            self.skip_nl()
            tok = self.peek()
            if tok is None:
                if closing:
                    raise DagopsError(f"Cannot read {self.where}: a block is never closed.")
                return items
            if closing and tok.text == closing:
                self.next()
                return items
            name_tok = self.next()
            if name_tok.kind not in ("ident", "string"):
                raise DagopsError(f"Cannot read {self.where}: unexpected {name_tok.text!r}.")
            name = name_tok.value if name_tok.kind == "string" else name_tok.text
            nxt = self.peek()
            if nxt is not None and nxt.text in ("=", ":"):
                self.next()
                items.append(("attr", name, [], self.expr()))
                continue
            labels: list[str] = []
            while (nxt := self.peek()) is not None and nxt.kind in ("ident", "string"):
                lab = self.next()
                labels.append(lab.value if lab.kind == "string" else lab.text)
            self.expect("{")
            items.append(("block", name, labels, self.body("}")))

    def expr(self) -> Any:
        start = self.i
        value = self.primary()
        tok = self.peek()
        if tok is None or tok.kind == "nl" or tok.text in (",", "}", "]", ")"):
            return value
        # Not a bare literal (an operator or a conditional follows): keep it, opaque, to the end of line.
        self.i = start
        return Opaque(self.opaque_text())

    def opaque_text(self) -> str:
        depth = 0
        parts: list[str] = []
        while (tok := self.peek()) is not None:
            if depth == 0 and (tok.kind == "nl" or tok.text in (",", "}", "]", ")")):
                break
            if tok.text in ("(", "[", "{"):
                depth += 1
            elif tok.text in (")", "]", "}"):
                depth -= 1
            if tok.kind == "nl":
                self.next()
                continue
            parts.append(self.next().text)
        return " ".join(parts)

    def primary(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise DagopsError(f"Cannot read {self.where}: a value is missing at the end.")
        if tok.kind == "string":
            self.next()
            if "${" in tok.text or "%{" in tok.text:
                return Opaque(tok.text)
            return tok.value
        if tok.kind == "number":
            self.next()
            return tok.value
        if tok.text == "-":
            self.next()
            num = self.next()
            if num.kind != "number":
                raise DagopsError(f"Cannot read {self.where}: '-' before {num.text!r}.")
            return -num.value
        if tok.text == "[":
            self.next()
            items: list[Any] = []
            while True:
                self.skip_nl()
                if (t := self.peek()) is not None and t.text == "]":
                    self.next()
                    return items
                items.append(self.expr())
                self.skip_nl()
                t = self.next()
                if t.text == "]":
                    return items
                if t.text != ",":
                    raise DagopsError(f"Cannot read {self.where}: expected ',' or ']' in a list.")
        if tok.text == "{":
            self.next()
            obj: dict[str, Any] = {}
            while True:
                self.skip_nl()
                t = self.next()
                if t.text == "}":
                    return obj
                if t.text == ",":
                    continue
                if t.kind not in ("ident", "string", "number"):
                    raise DagopsError(f"Cannot read {self.where}: unexpected {t.text!r} in an object.")
                key = str(t.value) if t.kind != "ident" else t.text
                sep = self.next()
                if sep.text not in ("=", ":"):
                    raise DagopsError(f"Cannot read {self.where}: expected '=' after {key!r}.")
                obj[key] = self.expr()
        if tok.kind == "ident":
            if tok.text in ("true", "false", "null"):
                self.next()
                return {"true": True, "false": False, "null": None}[tok.text]
            return Opaque(self.opaque_text())
        return Opaque(self.opaque_text())


def parse_hcl(text: str, where: str = "HCL text") -> list[tuple[str, str, list[str], Any]]:
    """Parse HCL into ``(kind, name, labels, value_or_body)`` items; non-literal values are ``Opaque``."""
    return _Parser(_tokenize(text, where), where).body(None)


def parse_hcl_value(text: str, where: str = "a value") -> Any:
    """Parse one HCL value, as given to ``-var name=VALUE``; a bare word is taken as a string."""
    parser = _Parser(_tokenize(text, where), where)
    value = parser.expr()
    if parser.peek(skip_nl=True) is not None:
        raise DagopsError(f"Cannot read {where}: {text!r} is more than one value.")
    if isinstance(value, Opaque) and re.fullmatch(r"[A-Za-z0-9_.\-]+", text.strip()):
        return text.strip()
    return value


def read_tfvars(path: Path) -> dict[str, Any]:
    """The ``name = value`` assignments of a tfvars file."""
    items = parse_hcl(path.read_text(), str(path))
    return {name: value for kind, name, _, value in items if kind == "attr"}


def read_variable_defaults(paths: list[Path]) -> dict[str, Any]:
    """``variable "x" { default = ... }`` of the given .tf files; variables without a default are left out."""
    defaults: dict[str, Any] = {}
    for path in paths:
        for kind, name, labels, body in parse_hcl(path.read_text(), str(path)):
            if kind != "block" or name != "variable" or not labels:
                continue
            for k, attr, _, value in body:
                if k == "attr" and attr == "default":
                    defaults[labels[0]] = value
    return defaults


# --------------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    region: str
    currency: str
    valid_as_of: str
    kind: str
    hours_per_month: float
    entries: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        path = path or PRICES_FILE
        try:
            data = json.loads(path.read_text())
            return cls(
                region=data["region"],
                currency=data["currency"],
                valid_as_of=data["valid_as_of"],
                kind=data["kind"],
                hours_per_month=float(data["hours_per_month"]),
                entries=data["prices"],
            )
        except (OSError, ValueError, KeyError) as exc:
            raise DagopsError(f"The price table {path} cannot be read: {exc}.") from None

    def usd(self, key: str, variant: str | None = None) -> float:
        entry = self.entries[key]
        value = entry.get("usd", entry.get("fraction"))
        if isinstance(value, dict):
            if variant not in value:
                raise DagopsError(
                    f"The price table has no {entry['what']} price for {variant!r}: "
                    f"known are {', '.join(sorted(value))}; add it to {PRICES_FILE.name}."
                )
            return float(value[variant])
        if not isinstance(value, int | float):
            raise DagopsError(f"The price table entry {key!r} has no number.")
        return float(value)

    def source(self, key: str) -> str:
        return str(self.entries[key]["source"])


# --------------------------------------------------------------------------------------------------
# Configuration of an environment
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What no configuration says, assumed; every field is printed with the estimate."""

    runs_per_month: int = 300
    run_minutes: float = 3.0
    log_gb_per_service_month: float = 0.5
    log_mb_per_run: float = 2.0
    log_gb_database_month: float = 0.2
    s3_storage_gb: float = 2.0
    s3_puts_per_month: int = 20_000
    s3_gets_per_month_extra: int = 20_000
    db_data_gb: float = 1.0
    db_daily_change: float = 0.05
    ecr_storage_gb: float = 1.5
    secrets: int = 2
    alb_lcu: float = 0.1

    def lines(self) -> list[str]:
        return [
            f"runs: {self.runs_per_month} a month of {self.run_minutes:g} min each, one Fargate task per run",
            f"logs: {self.log_gb_per_service_month:g} GB a month per always-on container, "
            f"{self.log_mb_per_run:g} MB per run, {self.log_gb_database_month:g} GB of PostgreSQL log; "
            "kept for the retention period, uncompressed (upper bound)",
            f"S3: {self.s3_storage_gb:g} GB stored (code, compute logs, assets, old versions), "
            f"{self.s3_puts_per_month:,} PUT/LIST and {self.s3_gets_per_month_extra:,} GET a month "
            "besides the sync agents' polls",
            f"RDS backups: {self.db_data_gb:g} GB of data changing {self.db_daily_change:.0%} a day; "
            "free up to the allocated storage",
            f"ECR: {self.ecr_storage_gb:g} GB of images kept; Secrets Manager: {self.secrets} secrets "
            "(RDS master password, S3 credentials); ALB (when on): "
            f"{self.alb_lcu:g} LCU average",
            "no free tier or credits, no savings plans, no taxes; data transfer out within the free 100 GB",
        ]


@dataclass(frozen=True)
class Task:
    """An always-on ECS service (or the single dev task): its size and how many copies run."""

    name: str
    cpu_units: int
    memory_mib: int
    count: int
    containers: tuple[str, ...]

    @property
    def vcpu(self) -> float:
        return self.cpu_units / 1024

    @property
    def memory_gb(self) -> float:
        return self.memory_mib / 1024


@dataclass(frozen=True)
class EnvConfig:
    env: str
    region: str
    tasks: tuple[Task, ...]
    run_cpu_units: int
    run_memory_mib: int
    spot: bool
    db_instance_class: str
    db_allocated_storage_gb: float
    db_multi_az: bool
    db_backup_retention_days: int
    log_retention_days: int
    enable_alb: bool
    public_ip: bool
    sync_interval_s: float
    locations: tuple[str, ...]
    notes: tuple[str, ...] = ()


# The variables of a live root that the model reads (tests check that the roots declare them).
MODEL_VARIABLES = (
    "region",
    "single_task",
    "use_fargate_spot",
    "webserver_cpu",
    "webserver_memory",
    "daemon_cpu",
    "daemon_memory",
    "code_location_cpu",
    "code_location_memory",
    "stack_cpu",
    "stack_memory",
    "run_cpu",
    "run_memory",
    "webserver_min_count",
    "webserver_max_count",
    "db_instance_class",
    "db_allocated_storage",
    "db_multi_az",
    "db_backup_retention_days",
    "log_retention_days",
    "enable_alb",
    "sync_interval_seconds",
)


def _literal(values: dict[str, Any], notes: list[str], default: Any, *names: str) -> Any:
    """The first of ``names`` set to a literal in ``values``, else ``default`` (noting a non-literal)."""
    for name in names:
        if name in values:
            value = values[name]
            if isinstance(value, Opaque):
                notes.append(f"{name} = {value.text} is not a literal; assumed {default!r}")
                return default
            if value is None:
                continue
            return value
    return default


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise DagopsError(f"{name} must be a number, not {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DagopsError(f"{name} must be a number, not {value!r}.") from None
    if not math.isfinite(number):
        raise DagopsError(f"{name} must be a finite number, not {value!r}.")
    return number


def _positive(value: Any, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be more than 0, not {value!r}.")
    return number


def _int(value: Any, name: str) -> int:
    """A whole number of at least 0."""
    number = _number(value, name)
    if number < 0 or number != int(number):
        raise DagopsError(f"{name} must be a whole number of 0 or more, not {value!r}.")
    return int(number)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DagopsError(f"{name} must be true or false, not {value!r}.")


def _cpu_units(value: Any, name: str) -> int:
    """Fargate CPU in units (256 = 0.25 vCPU); a value under 32 is taken as vCPUs."""
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be a positive number of CPU units, not {value!r}.")
    return int(number * 1024) if number < 32 else int(number)


def _memory_mib(value: Any, name: str) -> int:
    """Fargate memory in MiB; a value under 128 is taken as GB."""
    number = _number(value, name)
    if number <= 0:
        raise DagopsError(f"{name} must be a positive amount of memory in MiB, not {value!r}.")
    return int(number * 1024) if number < 128 else int(number)


# Fargate's CPU units and the memory (MiB) each allows.
_FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}


def fargate_size(cpu_units: int, memory_mib: int) -> tuple[int, int]:
    """The smallest Fargate task size with at least ``cpu_units`` and ``memory_mib``."""
    for cpu, memories in _FARGATE_SIZES.items():
        if cpu < cpu_units:
            continue
        for mem in memories:
            if mem >= memory_mib:
                return cpu, mem
    raise DagopsError(f"No Fargate task size holds {cpu_units} CPU units and {memory_mib} MiB.")


def _location_names(values: dict[str, Any], root: Path, notes: list[str]) -> tuple[str, ...]:
    """Code locations from the root's ``code_locations`` variable when literal, else the registry."""
    raw = values.get("code_locations")
    if isinstance(raw, list) and raw:
        names = [str(x.get("name")) if isinstance(x, dict) else str(x) for x in raw]
        return tuple(names)
    if isinstance(raw, dict) and raw:
        return tuple(raw)
    from dagops import registry

    try:
        return tuple(loc.name for loc in registry.load(root))
    except DagopsError:
        notes.append("no code-location registry found; assumed one location, main")
        return ("main",)


def environment_values(env: str, root: Path | None = None) -> dict[str, Any]:
    """Variable defaults of ``live/<env>`` overlaid by its terraform.tfvars and *.auto.tfvars."""
    root = root or repo_root()
    live = root / "live"
    validate_env_name(env, live)
    env_dir = live / env
    values = read_variable_defaults(sorted(env_dir.glob("*.tf")))
    tfvars = [env_dir / "terraform.tfvars", *sorted(env_dir.glob("*.auto.tfvars"))]
    for path in tfvars:
        if path.is_file():
            values.update(read_tfvars(path))
    return values


def environment_config(
    env: str, root: Path | None = None, overrides: dict[str, Any] | None = None
) -> EnvConfig:
    """The cost-relevant configuration of ``live/<env>``, with ``overrides`` applied like ``-var``."""
    root = root or repo_root()
    values = environment_values(env, root)
    if overrides:
        declared = set()
        for tf in sorted((root / "live" / env).glob("*.tf")):
            declared.update(re.findall(r'^\s*variable\s+"([^"]+)"', tf.read_text(), flags=re.MULTILINE))
        unknown = sorted(set(overrides) - declared)
        if unknown:
            raise DagopsError(
                f"live/{env} declares no variable {', '.join(repr(n) for n in unknown)}; "
                "--var takes the names in its variables.tf."
            )
    values.update(overrides or {})
    notes: list[str] = []

    def lit(default: Any, *names: str) -> Any:
        return _literal(values, notes, default, *names)

    locations = _location_names(values, root, notes)
    spot = _bool(lit(False, "use_fargate_spot", "fargate_spot"), "use_fargate_spot")
    single = _bool(lit(False, "single_task", "dev_single_task"), "single_task")
    sizes = {
        part: (
            _cpu_units(lit(256, f"{part}_cpu"), f"{part}_cpu"),
            _memory_mib(lit(512, f"{part}_memory"), f"{part}_memory"),
        )
        for part in ("webserver", "daemon", "code_location")
    }
    tasks: list[Task]
    if single:
        containers = ("webserver", "daemon", *(f"code-{loc}" for loc in locations))
        want_cpu = sizes["webserver"][0] + sizes["daemon"][0] + sizes["code_location"][0] * len(locations)
        want_mem = sizes["webserver"][1] + sizes["daemon"][1] + sizes["code_location"][1] * len(locations)
        cpu_set = lit(None, "single_task_cpu", "stack_cpu")
        mem_set = lit(None, "single_task_memory", "stack_memory")
        cpu = _cpu_units(cpu_set, "single_task_cpu") if cpu_set is not None else None
        mem = _memory_mib(mem_set, "single_task_memory") if mem_set is not None else None
        if cpu is None or mem is None:
            cpu, mem = fargate_size(cpu or want_cpu, mem or want_mem)
            notes.append(
                f"single task sized {cpu} CPU / {mem} MiB: the smallest Fargate size that holds "
                "its containers' sizes"
            )
        tasks = [Task("stack", cpu, mem, 1, containers)]
    else:
        webserver_count = _int(
            lit(1, "webserver_min_count", "webserver_desired_count", "webserver_count"), "webserver_min_count"
        )
        tasks = [
            Task("webserver", *sizes["webserver"], webserver_count, ("webserver",)),
            Task("daemon", *sizes["daemon"], 1, ("daemon",)),
            *(Task(f"code-{loc}", *sizes["code_location"], 1, (f"code-{loc}",)) for loc in locations),
        ]
        max_count = lit(None, "webserver_max_count")
        if max_count is not None and _int(max_count, "webserver_max_count") > webserver_count:
            notes.append(
                f"webserver counted at its minimum of {webserver_count} task(s); autoscaling up to "
                f"{_int(max_count, 'webserver_max_count')} adds its share only while scaled out"
            )
    return EnvConfig(
        env=env,
        region=str(lit("ap-southeast-2", "region", "aws_region")),
        tasks=tuple(tasks),
        run_cpu_units=_cpu_units(lit(256, "run_cpu", "run_task_cpu"), "run_cpu"),
        run_memory_mib=_memory_mib(lit(512, "run_memory", "run_task_memory"), "run_memory"),
        spot=spot,
        db_instance_class=str(lit("db.t4g.micro", "db_instance_class")),
        db_allocated_storage_gb=_positive(lit(20, "db_allocated_storage"), "db_allocated_storage"),
        db_multi_az=_bool(lit(False, "db_multi_az"), "db_multi_az"),
        db_backup_retention_days=_int(
            lit(7, "db_backup_retention_days", "backup_retention_period"), "backup"
        ),
        log_retention_days=_int(lit(30, "log_retention_days"), "log_retention_days"),
        enable_alb=_bool(lit(False, "enable_alb"), "enable_alb"),
        public_ip=_bool(lit(True, "assign_public_ip"), "assign_public_ip"),
        sync_interval_s=_positive(lit(60, "sync_interval_seconds", "sync_interval"), "sync_interval_seconds"),
        locations=locations,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    group: str
    name: str
    quantity: float
    unit: str
    unit_usd: float
    monthly_usd: float
    note: str = ""


@dataclass(frozen=True)
class Estimate:
    env: str
    region: str
    hours_on: float
    spot: bool
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return sum(item.monthly_usd for item in self.items)

    def by_group(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        for item in self.items:
            groups[item.group] = groups.get(item.group, 0.0) + item.monthly_usd
        return groups


def estimate(
    config: EnvConfig,
    prices: PriceTable | None = None,
    usage: Usage | None = None,
    hours_on: float | None = None,
) -> Estimate:
    """Itemized monthly cost of ``config``; ``hours_on`` < a month models pausing (services and RDS off)."""
    prices = prices or PriceTable.load()
    usage = usage or Usage()
    month = prices.hours_per_month
    hours = month if hours_on is None else min(float(hours_on), month)
    items: list[Item] = []

    def add(
        group: str,
        name: str,
        qty: float,
        unit: str,
        key: str,
        variant: str | None = None,
        factor: float = 1.0,
        note: str = "",
    ) -> None:
        unit_usd = prices.usd(key, variant) * factor
        items.append(Item(group, name, qty, unit, unit_usd, qty * unit_usd, note))

    spot_factor = 1.0 - prices.usd("fargate_spot_discount") if config.spot else 1.0
    spot_note = "Fargate Spot" if config.spot else "on-demand"
    for task in config.tasks:
        task_hours = task.count * hours
        tasks = f"{task.count} task{'s' if task.count > 1 else ''}"
        add(
            f"Fargate {task.name}",
            f"{task.vcpu:g} vCPU x {tasks}",
            task.vcpu * task_hours,
            "vCPU-hour",
            "fargate_arm_vcpu_hour",
            factor=spot_factor,
            note=spot_note,
        )
        add(
            f"Fargate {task.name}",
            f"{task.memory_gb:g} GB x {tasks}",
            task.memory_gb * task_hours,
            "GB-hour",
            "fargate_arm_gb_hour",
            factor=spot_factor,
            note=spot_note,
        )
    run_hours = usage.runs_per_month * max(usage.run_minutes, 1.0) / 60.0
    run_vcpu, run_gb = config.run_cpu_units / 1024, config.run_memory_mib / 1024
    add(
        "Fargate runs",
        f"{run_vcpu:g} vCPU x run tasks",
        run_vcpu * run_hours,
        "vCPU-hour",
        "fargate_arm_vcpu_hour",
        factor=spot_factor,
        note=spot_note,
    )
    add(
        "Fargate runs",
        f"{run_gb:g} GB x run tasks",
        run_gb * run_hours,
        "GB-hour",
        "fargate_arm_gb_hour",
        factor=spot_factor,
        note=spot_note,
    )

    db_factor = 2.0 if config.db_multi_az else 1.0
    az = "Multi-AZ" if config.db_multi_az else "Single-AZ"
    add(
        "RDS",
        f"{config.db_instance_class} instance ({az})",
        hours,
        "instance-hour",
        "rds_postgres_instance_hour",
        config.db_instance_class,
        factor=db_factor,
    )
    add(
        "RDS",
        f"gp3 storage {config.db_allocated_storage_gb:g} GB ({az})",
        config.db_allocated_storage_gb,
        "GB-month",
        "rds_gp3_gb_month",
        factor=db_factor,
    )
    days = config.db_backup_retention_days
    backup_gb = usage.db_data_gb * (1 + usage.db_daily_change * days) if days > 0 else 0.0
    billable_backup = max(0.0, backup_gb - config.db_allocated_storage_gb)
    add(
        "RDS",
        f"backups ~{backup_gb:.1f} GB, {days} days kept" if days > 0 else "backups off (retention 0)",
        billable_backup,
        "GB-month",
        "rds_backup_gb_month",
        note="free up to the allocated storage",
    )

    if config.public_ip:
        task_ips = sum(task.count for task in config.tasks) * hours
        run_ips = usage.runs_per_month * max(usage.run_minutes, 1.0) / 60.0
        add(
            "Public IPv4",
            "task public IPs (one per running task)",
            task_ips + run_ips,
            "address-hour",
            "public_ipv4_hour",
        )
    if config.enable_alb:
        add("ALB", "load balancer", month, "ALB-hour", "alb_hour")
        add("ALB", "capacity units", usage.alb_lcu * month, "LCU-hour", "alb_lcu_hour")
        add("Public IPv4", "ALB addresses (2 AZs)", 2 * month, "address-hour", "public_ipv4_hour")

    add(
        "Secrets Manager",
        f"{usage.secrets} secrets",
        usage.secrets,
        "secret-month",
        "secretsmanager_secret_month",
    )
    containers = sum(len(task.containers) * task.count for task in config.tasks)
    ingest_gb = (containers * usage.log_gb_per_service_month + usage.log_gb_database_month) * hours / month
    ingest_gb += usage.runs_per_month * usage.log_mb_per_run / 1024
    add(
        "CloudWatch Logs",
        f"ingestion ({containers} containers, runs, PostgreSQL log)",
        ingest_gb,
        "GB",
        "cloudwatch_logs_ingest_gb",
    )
    # Retention 0 means "never expire": counted as the pile-up after a year.
    kept_days = config.log_retention_days or 365
    stored_gb = ingest_gb * kept_days / 30.0
    add(
        "CloudWatch Logs",
        f"storage ({config.log_retention_days} days kept)",
        stored_gb,
        "GB-month",
        "cloudwatch_logs_storage_gb_month",
    )

    polls = len(config.locations) * hours * 3600 / config.sync_interval_s
    add("S3", f"storage {usage.s3_storage_gb:g} GB", usage.s3_storage_gb, "GB-month", "s3_standard_gb_month")
    add("S3", "PUT/LIST requests", usage.s3_puts_per_month / 1000, "1k requests", "s3_put_1k")
    add(
        "S3",
        f"GET requests (sync polls every {config.sync_interval_s:g} s + other)",
        (polls + usage.s3_gets_per_month_extra) / 1000,
        "1k requests",
        "s3_get_1k",
    )
    add(
        "ECR",
        f"image storage {usage.ecr_storage_gb:g} GB",
        usage.ecr_storage_gb,
        "GB-month",
        "ecr_storage_gb_month",
    )
    # The namespace exists in both shapes; the webserver and each code location register in it when they
    # run as services of their own (in the one-task stack they talk over localhost).
    single = len(config.tasks) == 1 and config.tasks[0].name == "stack"
    add("Cloud Map", "private DNS namespace (Route 53 zone)", 1, "zone-month", "route53_hosted_zone_month")
    if not single:
        registered = config.tasks[0].count + len(config.locations)
        add(
            "Cloud Map",
            "registered instances (webserver, code locations)",
            registered,
            "instance-month",
            "cloudmap_instance_month",
        )
    notes = list(config.notes)
    if config.region != prices.region:
        notes.append(f"the environment runs in {config.region} but the prices are {prices.region}'s")
    return Estimate(config.env, config.region, hours, config.spot, tuple(items), tuple(notes))


def working_hours_per_month() -> float:
    return WORKING_HOURS_PER_WEEK * WEEKS_PER_MONTH


@dataclass(frozen=True)
class Report:
    """An environment's estimate, and what Spot and pausing would change."""

    config: EnvConfig
    estimate: Estimate
    spot_alternative: Estimate
    paused: Estimate
    prices: PriceTable
    usage: Usage = field(default_factory=Usage)

    @property
    def spot_saving(self) -> float:
        """Monthly saving of running on Fargate Spot rather than on-demand (positive either way round)."""
        return abs(self.estimate.total - self.spot_alternative.total)

    @property
    def pause_saving(self) -> float:
        return self.estimate.total - self.paused.total

    def to_dict(self) -> dict[str, Any]:
        def est(e: Estimate) -> dict[str, Any]:
            return {
                "hours_on": round(e.hours_on, 2),
                "fargate_spot": e.spot,
                "total_usd": round(e.total, 2),
                "by_group_usd": {k: round(v, 2) for k, v in e.by_group().items()},
                "items": [
                    {**asdict(i), "monthly_usd": round(i.monthly_usd, 4), "quantity": round(i.quantity, 4)}
                    for i in e.items
                ],
            }

        return {
            "env": self.config.env,
            "region": self.config.region,
            "estimate": est(self.estimate),
            "fargate_spot_alternative": est(self.spot_alternative),
            "spot_saving_usd": round(self.spot_saving, 2),
            "paused_working_hours": est(self.paused),
            "pause_saving_usd": round(self.pause_saving, 2),
            "assumptions": [*self.usage.lines(), *self.estimate.notes],
            "price_table": {
                "region": self.prices.region,
                "valid_as_of": self.prices.valid_as_of,
                "kind": self.prices.kind,
                "sources": sorted({self.prices.source(k) for k in self.prices.entries}),
            },
        }


def report(
    env: str,
    root: Path | None = None,
    overrides: dict[str, Any] | None = None,
    prices: PriceTable | None = None,
    usage: Usage | None = None,
) -> Report:
    """The estimate of ``live/<env>`` with its Spot and pause alternatives."""
    prices = prices or PriceTable.load()
    usage = usage or Usage()
    config = environment_config(env, root, overrides)
    base = estimate(config, prices, usage)
    other = estimate(replace(config, spot=not config.spot), prices, usage)
    paused = estimate(config, prices, usage, hours_on=working_hours_per_month())
    return Report(config, base, other, paused, prices, usage)


def environments(root: Path | None = None) -> list[str]:
    """Every environment root under live/ (bootstrap, which runs no stack, and _shared left out)."""
    live = (root or repo_root()) / "live"
    if not live.is_dir():
        return []
    return sorted(p.name for p in live.iterdir() if is_env_root(p))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["name=value", ...]`` (as given to ``-var``) into a dict of HCL values."""
    result: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name.strip()):
            raise DagopsError(f"Cannot read the override {pair!r}: write it as name=value.")
        result[name.strip()] = parse_hcl_value(raw, f"the override {pair!r}")
    return result


def _money(value: float) -> str:
    return f"{value:,.2f}"


def format_report(rep: Report) -> str:
    """The estimate as a text table: one line per item, totals, the alternatives, assumptions, prices."""
    est = rep.estimate
    cfg = rep.config
    lines = [
        f"Monthly cost estimate: {cfg.env} ({cfg.region}, {rep.prices.currency}, "
        f"{'Fargate Spot' if cfg.spot else 'Fargate on-demand'}, ARM64)",
    ]
    w_item = max(len(f"{i.group}: {i.name}") for i in est.items)
    w_item = max(w_item, 20)
    header = f"{'item':<{w_item}}  {'quantity':>12}  {'unit':<14}  {'unit USD':>10}  {'USD/month':>10}"
    lines += [header, "-" * len(header)]
    for i in est.items:
        lines.append(
            f"{i.group + ': ' + i.name:<{w_item}}  {i.quantity:>12,.2f}  {i.unit:<14}  "
            f"{i.unit_usd:>10.5f}  {_money(i.monthly_usd):>10}"
        )
    lines += [
        "-" * len(header),
        f"{'total':<{w_item}}  {'':>12}  {'':<14}  {'':>10}  {_money(est.total):>10}",
    ]
    lines.append("")
    lines.append("by group: " + ", ".join(f"{g} {_money(v)}" for g, v in est.by_group().items()))
    if cfg.spot:
        lines.append(
            f"Fargate Spot saves {_money(rep.spot_saving)}/month: on-demand would be "
            f"{_money(rep.spot_alternative.total)} (Spot tasks can be interrupted with 2 minutes' notice)."
        )
    else:
        pct = rep.spot_saving / est.total * 100 if est.total else 0.0
        lines.append(
            f"On Fargate Spot it would be {_money(rep.spot_alternative.total)}/month, "
            f"{_money(rep.spot_saving)} ({pct:.0f}%) less "
            "(Spot tasks can be interrupted with 2 minutes' notice)."
        )
    pct = rep.pause_saving / est.total * 100 if est.total else 0.0
    lines.append(
        f"Paused outside working hours ({WORKING_HOURS_PER_WEEK:g} h a week on, {rep.paused.hours_on:.0f} of "
        f"{rep.prices.hours_per_month:g} h a month): {_money(rep.paused.total)}/month, "
        f"{_money(rep.pause_saving)} ({pct:.0f}%) less: services at zero and RDS stopped off-hours; "
        f"storage, secrets, the ALB and the registry still bill (`invoke env.pause --env {cfg.env}`, "
        "`invoke env.resume`; RDS restarts a stopped instance by itself after 7 days)."
    )
    lines.append("")
    lines.append("Assumptions:")
    lines += [f"  - {line}" for line in [*rep.usage.lines(), *est.notes]]
    lines.append(
        f"Prices: {rep.prices.region}, as of {rep.prices.valid_as_of}; {rep.prices.kind}. Sources: "
        + ", ".join(sorted({rep.prices.source(k) for k in rep.prices.entries}))
    )
    return "\n".join(lines)
