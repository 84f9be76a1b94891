"""The report as ``invoke cost`` prints it."""

from __future__ import annotations

from dagops.operator.cost.items import ENDPOINT_AZS, INTERFACE_ENDPOINTS, Estimate, endpoints_alternative_usd
from dagops.operator.cost.report import Report

UNVERIFIED_MARK = "*"


def money(value: float) -> str:
    return f"{value:,.2f}"


def marked_total(est: Estimate) -> str:
    """The total, marked when part of it rests on unverified prices."""
    if est.unverified_usd > 0.005:
        return f"{money(est.total)}{UNVERIFIED_MARK}"
    return money(est.total)


def _table(est: Estimate) -> list[str]:
    w_item = max(20, *(len(f"{i.group}: {i.name}") for i in est.items))
    header = f"{'item':<{w_item}}  {'quantity':>12}  {'unit':<14}  {'unit USD':>10}  {'USD/month':>10}"
    lines = [header, "-" * len(header)]
    for i in est.items:
        mark = " " if i.verified else UNVERIFIED_MARK
        lines.append(
            f"{i.group + ': ' + i.name:<{w_item}}  {i.quantity:>12,.2f}  {i.unit:<14}  "
            f"{i.unit_usd:>10.5f}{mark} {money(i.monthly_usd):>10}"
        )
    lines += [
        "-" * len(header),
        f"{'total':<{w_item}}  {'':>12}  {'':<14}  {'':>10}  {marked_total(est):>10}",
    ]
    lines.append(
        f"{UNVERIFIED_MARK} unit price not yet checked against its source: "
        f"{money(est.unverified_usd)} of the total rests on such prices ('unverified' in prices.json)."
    )
    return lines


def _spot_line(rep: Report) -> str:
    if rep.config.spot:
        return (
            f"Fargate Spot saves {money(rep.spot_saving)}/month: on-demand would be "
            f"{marked_total(rep.spot_alternative)} (Spot is 'up to 70 %' off, no regional Spot price was "
            "found, so 70 % is taken; Spot tasks can be interrupted with 2 minutes' notice)."
        )
    pct = rep.spot_saving / rep.estimate.total * 100 if rep.estimate.total else 0.0
    return (
        f"On Fargate Spot it would be {marked_total(rep.spot_alternative)}/month, {money(rep.spot_saving)} "
        f"({pct:.0f}%) less (Spot is 'up to 70 %' off; tasks can be interrupted with 2 minutes' notice)."
    )


def _schedule_line(rep: Report) -> str:
    hours = rep.config.schedule
    paused = rep.paused
    pct = rep.pause_saving / rep.always_on.total * 100 if rep.always_on.total else 0.0
    state = (
        "the office-hours schedule is on (schedule_enabled)"
        if hours.enabled
        else "office-hours schedule, off here: set schedule_enabled = true"
    )
    return (
        f"Paused outside working hours ({state}: {hours.describe()}; services {paused.hours_on:.0f} h, "
        f"database {paused.database_hours:.0f} h of {rep.prices.hours_per_month:g} h a month): "
        f"{marked_total(paused)}/month; around the clock {marked_total(rep.always_on)}, "
        f"{money(rep.pause_saving)} ({pct:.0f}%) more. EventBridge Scheduler stops the services and RDS "
        "every evening (every day, which also catches RDS's own restart after 7 days) and starts them on the "
        "active days; storage, secrets, the ALB and the registry still bill. "
        f"`invoke env.pause --env {rep.config.env}` / `env.resume` work in between."
    )


def _ipv4_line(rep: Report) -> str:
    ipv4 = rep.estimate.by_group().get("Public IPv4", 0.0)
    endpoints = endpoints_alternative_usd(rep.prices)
    mark = "" if rep.prices.verified("vpc_interface_endpoint_hour") else UNVERIFIED_MARK
    return (
        f"Public IPv4 {money(ipv4)}/month; without it the tasks would need interface endpoints "
        f"({', '.join(INTERFACE_ENDPOINTS)}) in {ENDPOINT_AZS} AZs: {money(endpoints)}{mark}/month before "
        "data processing (or a NAT gateway), so the addresses stay."
    )


def _goal_line(rep: Report) -> str:
    if rep.goal is None:
        return "Goal: none set for this environment (the original design's USD 15-25 covers dev and prod)."
    goal = rep.goal
    how = "on Fargate Spot with the office-hours schedule" if goal.spot else "with the office-hours schedule"
    verdict = "met" if goal.met else "NOT met"
    return (
        f"Goal (original design: USD 15-25 a month after the free tier): {rep.config.env} at most "
        f"{money(goal.usd)} {how}, on list prices: {marked_total(goal.estimate)}, {verdict}."
    )


def format_report(rep: Report) -> str:
    """The estimate as a text table: items, totals, alternatives, goal, first year, assumptions, prices."""
    est, cfg = rep.estimate, rep.config
    schedule = f", office hours {cfg.schedule.describe()}" if cfg.schedule.enabled else ", around the clock"
    lines = [
        f"Monthly cost estimate: {cfg.env} ({cfg.region}, {rep.prices.currency}, "
        f"{'Fargate Spot' if cfg.spot else 'Fargate on-demand'}, ARM64{schedule})",
        *_table(est),
        "",
        "by group: " + ", ".join(f"{g} {money(v)}" for g, v in est.by_group().items()),
        _spot_line(rep),
        _schedule_line(rep),
        _ipv4_line(rep),
        _goal_line(rep),
        "First year (12 x this estimate, after free tiers):",
        *(f"  - {f.regime}: {money(f.usd)} ({f.covers})" for f in rep.first_year()),
        "",
        "Assumptions:",
        *(f"  - {line}" for line in [*rep.usage.lines(), *est.notes]),
        f"Prices: {rep.prices.region}, as of {rep.prices.valid_as_of}; {rep.prices.kind} Unverified: "
        + ", ".join(rep.prices.unverified())
        + ". Sources: "
        + ", ".join(sorted({rep.prices.source(k) for k in rep.prices.entries})),
    ]
    return "\n".join(lines)
