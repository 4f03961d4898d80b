"""Simulate a regular county inspection round from preparation to closure.

Five inspected organizations, tens of problems each, immediate fixes on site, a
refined problem, leads transferred to the discipline commission and the
organization department, a rejected submission, a long-term item — and at the
end the round's outcome figures, the same figures an inspection office reports.

The events are written to a SQLite file (``xuncha_round.sqlite3`` by default), which
is then reopened, verified and replayed; ``examples/inspect_store.py`` does the same
for any database file later.

    python examples/simulate_round.py [--seed N] [--json] [--db FILE | --memory]
"""

from __future__ import annotations

import argparse
import json
import random
import unicodedata
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    DeadlinePolicy,
    Engine,
    EventLog,
    Message,
    OutcomeFigures,
    Process,
    RolePolicy,
    outcome_figures,
)
from xuncha_flow.testing import ManualClock, RoundDriver

ROUND = "XC-2026-03"
LONG_TERM = "U-CITYINV-P07"
UNITS = [
    # unit id, name, organization id, team id, problems found
    ("U-EDU", "县教育局党组", "org-edu", "team-1", 34),
    ("U-HEALTH", "县卫生健康局党组", "org-health", "team-1", 29),
    ("U-MEDINS", "县医疗保障局党组", "org-medins", "team-2", 22),
    ("U-TOWN", "青山镇党委", "org-town", "team-2", 41),
    ("U-CITYINV", "县城市建设投资有限公司党委", "org-cityinv", "team-3", 26),
]
CATEGORIES = ["党的建设", "意识形态", "财务管理", "工程项目", "选人用人", "作风建设"]
SOURCES = ["interview", "petition", "document_review", "visit"]


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=DEFAULT_TIMEZONE)


def simulate(
    seed: int = 2026,
    policy: RolePolicy | None = None,
    deadlines: DeadlinePolicy | None = None,
    log: EventLog | None = None,
) -> tuple[Engine, OutcomeFigures]:
    rng = random.Random(seed)
    start = date(2026, 3, 2)
    clock = ManualClock(at(start))
    counter = iter(range(1, 10**9))
    engine = Engine(
        clock=clock,
        process=Process.standard(
            policy, deadlines=deadlines if deadlines is not None else DeadlinePolicy.standard()
        ),
        ids=lambda: f"ev-{next(counter):06d}",
        log=log,
    )
    drv = RoundDriver(engine, ROUND)

    # 1. prepare: targets approved, units and teams set
    drv.round(
        "open",
        {
            "name": "十五届县委第三轮巡察",
            "level": "county",
            "kind": "regular",
            "theme": "医药领域和优化营商环境",
            "planned_start": "2026-03-09",
            "planned_end": "2026-09-30",
        },
    )
    for unit_id, name, org, team, _ in UNITS:
        drv.do(
            "unit",
            unit_id,
            "add",
            {
                "name": name,
                "organization_id": org,
                "team_id": team,
                "onsite_start": "2026-03-09",
                "onsite_end": "2026-04-17",
            },
        )
    drv.round("approve")

    # 2–3. mobilize and go on site (about 40 days for a county round)
    clock.set(at(date(2026, 3, 9)))
    drv.round("launch", {"petition_closing_date": "2026-04-10"})
    items: dict[str, list[str]] = {}
    for unit_id, _, _, _, found in UNITS:
        items[unit_id] = []
        for n in range(1, found + 1):
            item_id = f"{unit_id}-P{n:02d}"
            clock.advance(hours=3)
            drv.do(
                "item",
                item_id,
                "record",
                {
                    "unit_id": unit_id,
                    "description": f"{rng.choice(CATEGORIES)}方面问题 {n}",
                    "category": rng.choice(CATEGORIES),
                    "source": rng.choice(SOURCES),
                    "concerns_head": rng.random() < 0.05,
                    "amount_involved": str(Decimal(rng.randrange(0, 500_000)) / 100),
                },
            )
            items[unit_id].append(item_id)

    # immediate fixes (立行立改): ordered, fixed and closed while on site
    for ids in items.values():
        for item_id in rng.sample(ids, 3):
            drv.do("item", item_id, "order_immediate_fix")
            drv.do(
                "item",
                item_id,
                "submit",
                {"summary": "已当场整改", "amount_recovered": "12000.00"},
                attachments=[f"evidence/{item_id}/receipt.pdf"],
            )
            drv.do("item", item_id, "verify", {"notes": "现场核实"})
            drv.do("item", item_id, "close")
    # leads transferred while inspecting (边巡边移)
    clock.set(at(date(2026, 4, 1)))
    leads = [
        ("L-01", "U-EDU", "discipline_commission", "jw"),
        ("L-02", "U-CITYINV", "discipline_commission", "jw"),
        ("L-03", "U-TOWN", "organization_department", "zzb"),
    ]
    for lead_id, unit_id, receiver, org in leads:
        drv.do(
            "lead",
            lead_id,
            "transfer",
            {
                "item_ids": [items[unit_id][-1]],
                "receiver": receiver,
                "receiver_org": org,
                "summary": "涉嫌违纪问题线索",
                "transferred_on": "2026-04-01",
            },
        )

    # the rest is confirmed into the report; one is not substantiated
    for unit_id, ids in items.items():
        for item_id in ids:
            if engine.state(ROUND).items[item_id].state == "found":
                if item_id == f"{unit_id}-P02":
                    drv.do("item", item_id, "withdraw", reason="经核实不属实")
                else:
                    drv.do("item", item_id, "confirm")
    clock.set(at(date(2026, 4, 17), 17))
    for unit_id, *_ in UNITS:
        drv.do("unit", unit_id, "leave_site")
    drv.round("conclude_onsite")

    # 4. report: the secretary's meeting decides each unit's report
    clock.set(at(date(2026, 5, 8)))
    for unit_id, *_ in UNITS:
        drv.do("unit", unit_id, "decide_report")
    drv.round("conclude_report")

    # 5. feedback; the rectification clock starts
    feedback = date(2026, 5, 15)
    clock.set(at(feedback))
    for unit_id, *_ in UNITS:
        drv.do(
            "unit",
            unit_id,
            "deliver_feedback",
            {"delivered_on": feedback.isoformat(), "mode": "collective"},
        )
    drv.round("start_rectification")

    # 6. claim, refine one problem, plan measures
    clock.set(at(date(2026, 6, 5)))
    refined = "U-TOWN-P05"
    for ids in items.values():
        for item_id in ids:
            if engine.state(ROUND).items[item_id].state == "fed_back":
                drv.do("item", item_id, "claim")
    drv.do(
        "item",
        refined,
        "refine",
        {"children": [{"id": f"{refined}-{k}", "description": f"细化问题 {k}"} for k in (1, 2, 3)]},
    )
    for unit_id in items:
        for item_id in [i for i in engine.state(ROUND).leaves(unit_id) if i.state == "claimed"]:
            for k in range(1, rng.randint(1, 3) + 1):
                drv.do(
                    "measure",
                    f"M-{item_id.id}-{k}",
                    "add",
                    {
                        "item_id": item_id.id,
                        "text": f"整改措施 {k}",
                        "responsible_leader": f"{unit_id}-leader",
                        "responsible_person": f"{unit_id}-staff-{rng.randint(1, 9)}",
                        "due_date": (
                            date(2026, 7, 10)
                            if item_id.id == LONG_TERM
                            else feedback + timedelta(days=rng.randint(50, 60))
                        ).isoformat(),
                    },
                )
        drv.do("unit", unit_id, "submit_plan")
        drv.do("unit", unit_id, "approve_plan")

    # half the rectification window has passed: the supervision office's sweep sends
    # the three-colour letters for measures falling due and checks 时间过半、任务过半
    clock.set(at(date(2026, 6, 20)))
    engine.sweep()

    # leads: received, checked, concluded, reported back within three months (Art. 29),
    # reconciled by the inspection office (对账)
    for lead_id, *_ in leads:
        drv.do("lead", lead_id, "receive")
        drv.do("lead", lead_id, "start_check")
        drv.do(
            "lead",
            lead_id,
            "conclude",
            {"result": "case_opened" if lead_id == "L-01" else "handled"},
        )
        drv.do("lead", lead_id, "report_back", {"reported_on": "2026-06-19"})
        drv.do("lead", lead_id, "reconcile")

    # 7. rectify: measures done, items submitted with evidence, verified, closed
    long_term = LONG_TERM
    rejected = "U-HEALTH-P04"
    clock.set(at(date(2026, 7, 2)))
    state = engine.state(ROUND)
    for unit_id in items:
        for item in [i for i in state.leaves(unit_id) if i.state == "rectifying"]:
            for measure_id in item.measure_ids:
                drv.do("measure", measure_id, "start")
                if item.id != long_term:
                    drv.do("measure", measure_id, "complete", {"done_on": "2026-07-01"})
            if item.id == long_term:
                continue
            drv.do(
                "item",
                item.id,
                "submit",
                {
                    "summary": "整改完成",
                    "amount_recovered": str(Decimal(rng.randrange(0, 2_000_000)) / 100),
                    "rules_established": ["制度 " + item.id] if rng.random() < 0.3 else [],
                    "people_held_accountable": 1 if rng.random() < 0.1 else 0,
                },
                attachments=[f"evidence/{item.id}/report.pdf"],
            )
            if item.id == rejected:
                drv.do("item", item.id, "reject", reason="佐证材料不足，二次整改")
                drv.do(
                    "item",
                    item.id,
                    "submit",
                    {"summary": "补充材料"},
                    attachments=[f"evidence/{item.id}/report-v2.pdf"],
                )
            drv.do("item", item.id, "verify")
            drv.do("item", item.id, "close")
    drv.do(
        "item",
        long_term,
        "mark_long_term",
        {
            "milestones": [
                {"title": "完成资产清查", "due": "2026-12-31"},
                {"title": "完成历史遗留问题处置", "due": "2027-06-30"},
            ]
        },
    )
    clock.set(at(date(2026, 7, 14)))
    engine.sweep()  # the long-term item's measures are past due: red (overdue) rungs
    for unit_id, *_ in UNITS:
        drv.do("unit", unit_id, "report_rectification")
    drv.round("publish")

    # 8–10. publish, evaluate, close
    clock.set(at(date(2026, 7, 20)))
    for unit_id, *_ in UNITS:
        drv.do("unit", unit_id, "publish", {"in_party": True, "public": True})
    drv.round("start_evaluation")
    clock.set(at(date(2026, 8, 10)))
    for unit_id, *_ in UNITS:
        score = Decimal(rng.randrange(8600, 9800)) / 100
        grade = "good" if score >= 90 else "fairly_good"
        drv.do("unit", unit_id, "evaluate", {"score": str(score), "grade": grade})
    # the accountability recommendations for the overdue measures reach the leading
    # group, which dismisses them: the item is formally long-term (长期整改)
    clock.set(at(date(2026, 8, 28)))
    engine.sweep()
    for rec in list(engine.state(ROUND).recommendations.values()):
        if rec.state == "pending":
            drv.do(
                "recommendation",
                rec.id,
                "dismiss",
                reason="已列为长期整改，按阶段目标推进，不予问责",
            )
    drv.round("close")
    return engine, outcome_figures(engine.state(ROUND))


def supervision(engine: Engine) -> dict[str, int]:
    """How the supervision of rectification went, counted from the log."""
    counts = {
        "warnings": 0,
        "overdue": 0,
        "checks_passed": 0,
        "recommendations": 0,
        "decisions": 0,
        "deadlines_met": 0,
    }
    for event in engine.log.read(ROUND):
        if event.type == "deadline.escalate":
            if event.payload.get("outcome") == "passed":
                counts["checks_passed"] += 1
            elif event.payload.get("kind") == "warning":
                counts["warnings"] += 1
            elif event.payload.get("kind") == "overdue":
                counts["overdue"] += 1
        elif event.type == "recommendation.recommend":
            counts["recommendations"] += 1
        elif event.type in ("recommendation.confirm", "recommendation.dismiss"):
            counts["decisions"] += 1
        elif event.type == "deadline.meet":
            counts["deadlines_met"] += 1
    return counts


def _pad(text: str, width: int) -> str:
    """Left-justify ``text`` to ``width`` terminal columns (CJK characters take two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(width - used, 0)


def render(figures: OutcomeFigures) -> str:
    def pct(rate: float | None) -> str:
        return "—" if rate is None else f"{rate:.2%}"

    lines = [
        f"巡察轮次 {figures.round_id} — outcome figures",
        f"  problems found (发现问题)            {figures.problems_found}",
        f"  problems fed back (反馈问题)         {figures.problems_fed_back}",
        f"  immediate fixes (立行立改)           {figures.immediate_fixes}",
        f"  leads transferred (移交线索)         {figures.leads_transferred}",
        f"  leads reconciled (对账)              {figures.leads_reconciled}",
        f"  items to rectify (leaf items)        {figures.items}",
        f"  closed (销号)                        {figures.closed}",
        f"  long-term (长期整改)                 {figures.long_term}",
        f"  withdrawn (不属实)                   {figures.withdrawn}",
        f"  completion rate (整改完成率)         {pct(figures.completion_rate)}",
        f"  losses recovered (挽回经济损失, 元)  {figures.economic_losses_recovered:,.2f}",
        f"  rules established (建立完善制度)     {figures.rules_established}",
        f"  people held accountable (问责)       {figures.people_held_accountable}",
        "",
        f"  {'unit':<28}{'items':>6}{'closed':>8}{'long':>6}{'rate':>9}",
    ]
    for u in figures.units:
        lines.append(
            f"  {_pad(u.name, 28)}{u.items:>6}{u.closed:>8}{u.long_term:>6}"
            f"{pct(u.completion_rate):>9}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("xuncha_round.sqlite3"),
        help="the SQLite file the round's events are written to (replaced if it exists)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="keep the events in memory, write no file"
    )
    args = parser.parse_args()
    log: EventLog | None = None
    if not args.memory:
        from xuncha_flow.stores import sqlite_log  # needs the 'sqlite' extra

        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        log = sqlite_log(args.db, synchronous="NORMAL")
    engine, figures = simulate(args.seed, log=log)
    if args.json:
        print(json.dumps(figures.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    print(render(figures))
    s = supervision(engine)
    print(
        f"\nsupervision (三色预警): {s['deadlines_met']} deadlines met; {s['warnings']} "
        f"warnings; {s['overdue']} overdue; {s['checks_passed']} half-time checks passed; "
        f"{s['recommendations']} recommendations, {s['decisions']} decided"
    )
    sent: list[Message] = []
    engine.deliver(sent.append)  # the letters, after commit, each with its idempotency key
    topics = Counter(m.topic for m in sent)
    print(
        f"outbox (督办函件): {len(sent)} notifications delivered — "
        + ", ".join(f"{topic} {n}" for topic, n in sorted(topics.items()))
    )
    state = engine.state(ROUND)
    report = engine.verify()  # chains, replay, snapshots, due index
    print(
        f"\nround state: {state.round.state if state.round else '?'}; "
        f"{state.version} events; hash chain {'verified' if report.ok else 'BROKEN'}; "
        f"replay {'matches' if engine.replay(ROUND) == state else 'DIFFERS'}"
    )
    if log is not None:
        from xuncha_flow.stores import SqlEventLog, sqlite_log

        assert isinstance(log, SqlEventLog)
        log.close()
        with sqlite_log(args.db) as reopened:  # a new connection to the file
            again = Engine(clock=engine.clock, log=reopened, process=engine.process)
            same = again.state(ROUND) == state
            checked = reopened.verify()
        print(
            f"database {args.db}: reopened, {checked.events} events verified "
            f"({'ok' if checked.ok else 'BROKEN'}), state {'equals' if same else 'DIFFERS FROM'} "
            f"the live round; inspect it with: python examples/inspect_store.py {args.db}"
        )


if __name__ == "__main__":
    main()
