"""Benchmark 6: the cost model's estimate of every environment under live/ (what `invoke cost` prints)."""

from __future__ import annotations

from benchmarks.common import INFO, Row


def cost() -> tuple[list[Row], list[str]]:
    """One row per environment (total, Spot and pause savings) and the full tables as text."""
    from dagops.operator import cost as model

    envs = model.environments()
    if not envs:
        raise RuntimeError("no environment roots under live/ to estimate")
    rows: list[Row] = []
    tables: list[str] = []
    for env in envs:
        rep = model.report(env)
        est = rep.estimate
        if est.spot:
            spot = f"Spot saves {rep.spot_saving:.2f} (on-demand {rep.spot_alternative.total:.2f})"
        else:
            spot = f"on Spot {rep.spot_alternative.total:.2f} (-{rep.spot_saving:.2f})"
        rows.append(
            Row(
                "6 cost",
                f"{env}: USD/month ({'Spot' if est.spot else 'on-demand'})",
                f"{est.total:.2f}; {spot}; office hours {rep.paused.total:.2f}, "
                f"around the clock {rep.always_on.total:.2f}",
                "-",
                INFO,
                f"invoke cost --env {env}",
                value=round(est.total, 2),
                unit="USD/month",
                details=rep.to_dict(),
            )
        )
        tables.append(model.format_report(rep))
    return rows, tables
