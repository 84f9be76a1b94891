"""The price table (prices.json beside this module): one region's list prices, each with its source and
the date it was checked against that source, or "unverified"."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagops.errors import DagopsError

PRICES_FILE = Path(__file__).with_name("prices.json")
UNVERIFIED = "unverified"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class PriceTable:
    region: str
    currency: str
    valid_as_of: str
    kind: str
    hours_per_month: float
    entries: dict[str, dict[str, Any]]
    free_tier: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        path = path or PRICES_FILE
        try:
            data = json.loads(path.read_text())
            table = cls(
                region=data["region"],
                currency=data["currency"],
                valid_as_of=data["valid_as_of"],
                kind=data["kind"],
                hours_per_month=float(data["hours_per_month"]),
                entries=data["prices"],
                free_tier=data.get("free_tier", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DagopsError(f"The price table {path} cannot be read: {exc}.") from None
        for key, entry in table.entries.items():
            checked = entry.get("checked")
            if checked != UNVERIFIED and not (isinstance(checked, str) and _DATE.fullmatch(checked)):
                raise DagopsError(
                    f"The price table entry {key!r} must say when it was checked (YYYY-MM-DD) or "
                    f"{UNVERIFIED!r}, not {checked!r}."
                )
        return table

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

    def verified(self, key: str) -> bool:
        return self.entries[key].get("checked", UNVERIFIED) != UNVERIFIED

    def unverified(self) -> list[str]:
        return sorted(key for key in self.entries if not self.verified(key))

    def allowance(self, regime: str, name: str) -> float:
        """A free-tier allowance (``always_free``, ``legacy_12_months`` or ``credits``); 0 when absent."""
        value = self.free_tier.get(regime, {}).get(name, 0)
        return float(value) if isinstance(value, int | float) else 0.0
