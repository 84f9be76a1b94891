"""A root's configuration as values: tfvars assignments and variable defaults, read with python-hcl2.

Literals (strings, numbers, bools, null, lists, objects, heredocs) come back as Python values; any other
expression (a reference, a function call, an interpolated string) comes back as ``Opaque`` holding its
text, so the cost model can fall back to its own default and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError

_BARE_WORD = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class Opaque:
    """An HCL expression that is not a literal (a reference, a function call, an operator)."""

    text: str


def _transformer() -> Any:
    from hcl2.transformer import DictTransformer

    class _Transformer(DictTransformer):
        """python-hcl2's transformer, keeping a heredoc's final newline as HCL does."""

        def heredoc_template(self, args: list[Any]) -> str:
            return _with_newline(super().heredoc_template(args))

        def heredoc_template_trim(self, args: list[Any]) -> str:
            return _with_newline(super().heredoc_template_trim(args))

    return _Transformer()


def _with_newline(quoted: str) -> str:
    return quoted[:-1] + '\n"' if quoted.endswith('"') else quoted


def _value(raw: Any) -> Any:
    """python-hcl2's serialized value as a literal, or ``Opaque`` for an expression."""
    if isinstance(raw, str):
        if raw.startswith("${") and raw.endswith("}"):
            return Opaque(raw[2:-1])
        if "${" in raw or "%{" in raw:
            return Opaque(raw)
        return raw
    if isinstance(raw, list):
        return [_value(item) for item in raw]
    if isinstance(raw, dict):
        return {key: _value(item) for key, item in raw.items()}
    return raw


def loads(text: str, where: str = "HCL text") -> dict[str, Any]:
    """Parse HCL; blocks come back as lists under their type (``{"variable": [{"x": {...}}]}``)."""
    from hcl2.parser import parser
    from lark.exceptions import LarkError, UnexpectedInput

    try:
        return dict(_transformer().transform(parser().parse(text + "\n")))
    except UnexpectedInput as exc:
        raise DagopsError(
            f"Cannot read {where}: unexpected text on line {exc.line}, column {exc.column}."
        ) from None
    except (LarkError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DagopsError(f"Cannot read {where}: {first}.") from None


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DagopsError(f"Cannot read {path}: {exc}.") from None
    return loads(text, str(path))


def parse(text: str, where: str = "HCL text") -> dict[str, Any]:
    """The top-level ``name = value`` assignments of HCL text, as values (``Opaque`` for expressions)."""
    return {name: _value(value) for name, value in loads(text, where).items()}


def read_tfvars(path: Path) -> dict[str, Any]:
    """The ``name = value`` assignments of a tfvars file."""
    return {name: _value(value) for name, value in read_file(path).items()}


def _variables(paths: list[Path]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        for block in read_file(path).get("variable", []):
            for name, body in block.items():
                found[name] = body if isinstance(body, dict) else {}
    return found


def declared_variables(paths: list[Path]) -> set[str]:
    """Every ``variable "x"`` the given .tf files declare."""
    return set(_variables(paths))


def read_variable_defaults(paths: list[Path]) -> dict[str, Any]:
    """``variable "x" { default = ... }`` of the given .tf files; variables without a default are left out."""
    return {name: _value(body["default"]) for name, body in _variables(paths).items() if "default" in body}


def parse_value(text: str, where: str = "a value") -> Any:
    """One HCL value, as given to ``-var name=VALUE``; a bare word is taken as a string."""
    try:
        parsed = loads(f"value = {text}\n", where)
    except DagopsError:
        if _BARE_WORD.fullmatch(text.strip()):
            return text.strip()
        raise DagopsError(f"Cannot read {where}: {text!r} is not one HCL value.") from None
    if set(parsed) != {"value"}:
        raise DagopsError(f"Cannot read {where}: {text!r} is more than one value.")
    value = _value(parsed["value"])
    if isinstance(value, Opaque) and _BARE_WORD.fullmatch(text.strip()):
        return text.strip()
    return value
