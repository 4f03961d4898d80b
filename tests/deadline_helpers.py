"""Shared builders for the deadline, sweep and escalation tests (issue 3).

A :class:`DWorld` is a :class:`helpers.World` whose engine runs a deadline policy
(``DeadlinePolicy.standard()`` by default) on a :class:`~xuncha_flow.ManualClock`,
with units that have a head and a leader in charge (ladder letters go to them)::

    w = DWorld(DeadlinePolicy.standard("five_letters"))
    w.to_feedback({"U-1": ["P-1", "P-2"]})   # plan and report deadlines open
    w.plan("U-1")                             # measure deadlines open at approval
    report = w.sweep_at(w.deadline("measure_due:M-P-1-1").due_at)

Dates are those of :mod:`helpers`: the world starts on Monday 2 March 2026, goes on
site a week later for 40 days and delivers feedback on day 70 (11 May 2026); a
measure is due 45 days after feedback (25 June 2026) unless a test says otherwise.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from helpers import ROUND, START, UNITS, Driver, World, at
from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    Calendars,
    DeadlinePolicy,
    DeadlineRule,
    Duration,
    Engine,
    Event,
    EventLog,
    HolidaySchedule,
    Hooks,
    InMemoryEventLog,
    Process,
    RolePolicy,
    SweepReport,
)
from xuncha_flow._model import Deadline
from xuncha_flow.testing import ManualClock

__all__ = [
    "FAKE_2027_HOLIDAYS",
    "FAKE_2027_WORKDAYS",
    "ITEMS",
    "OFFICIAL",
    "ROUND",
    "SH",
    "START",
    "DWorld",
    "approve_plans",
    "at",
    "claimed_round",
    "custom_policy",
    "firings",
    "log_firings",
    "only_rules",
    "process",
    "resume",
    "with_fake_2027",
    "working_day_plan_rule",
]

SH = DEFAULT_TIMEZONE

OFFICIAL = HolidaySchedule.from_chinese_calendar()
"""The State Council schedule as published in ``chinese-calendar`` (1.11.0: 2004–2026)."""

# MADE-UP TEST DATA — NOT the real 2027 schedule (the State Council had not published
# it when these tests were written). It only has the right shape: a New Year block,
# a Spring Festival block with a make-up Saturday before it, a National Day week with
# a make-up Saturday after it. Same data as ``test_calendar.py``.
FAKE_2027_HOLIDAYS = (
    ["2027-01-01", "2027-01-02", "2027-01-03"]
    + [f"2027-02-{d:02}" for d in range(5, 13)]  # Fri 5 Feb .. Fri 12 Feb (made up)
    + [f"2027-10-{d:02}" for d in range(1, 8)]
)
FAKE_2027_WORKDAYS = ["2027-02-13", "2027-10-09"]  # both Saturdays (made up)


@functools.cache
def with_fake_2027() -> HolidaySchedule:
    """The official schedule plus the MADE-UP 2027 data above, as a host would load
    next year's notice before ``chinese-calendar`` is updated."""
    return OFFICIAL.with_year(2027, holidays=FAKE_2027_HOLIDAYS, workdays=FAKE_2027_WORKDAYS)


def only_rules(policy: DeadlinePolicy, *names: str, name: str | None = None) -> DeadlinePolicy:
    """``policy`` with only the named rules (validated again, fresh fingerprint)."""
    data = policy.model_dump()
    data["rules"] = [r for r in data["rules"] if r["name"] in names]
    data["name"] = name or f"{policy.name}[{','.join(names)}]"
    return DeadlinePolicy.model_validate(data)


def custom_policy(*rules: DeadlineRule, name: str = "custom", **fields: Any) -> DeadlinePolicy:
    """A policy with ``rules`` and the preset ladders."""
    return DeadlinePolicy(
        name=name, rules=rules, ladders=DeadlinePolicy.standard().ladders, **fields
    )


def working_day_plan_rule(amount: int, *, name: str = "plan_in_working_days") -> DeadlineRule:
    """The rectification plan due ``amount`` working days after the feedback date."""
    return DeadlineRule(
        name=name,
        label="报送整改方案（工作日）",
        source="a test rule: plan within N working days [practice]",
        subject="unit",
        anchors=("unit.deliver_feedback",),
        start="payload:delivered_on",
        duration=Duration(amount=amount, unit="working_days"),
        met_by=("unit.submit_plan",),
        ladder="three_colour",
    )


def firings(events: Iterable[Event]) -> list[tuple[str, str]]:
    """(deadline id, rung) of every ``deadline.escalate`` among ``events``, in order."""
    return [(e.subject, str(e.payload["rung"])) for e in events if e.type == "deadline.escalate"]


def log_firings(log: EventLog, round_id: str = ROUND) -> list[tuple[str, str]]:
    return firings(log.read(round_id))


@functools.cache
def process(
    deadlines: DeadlinePolicy,
    schedule: HolidaySchedule | None = None,
    policy: RolePolicy | None = None,
) -> Process:
    """The standard process with ``deadlines``, built once (a process is immutable)."""
    return Process.standard(
        policy,
        deadlines=deadlines,
        calendars=Calendars(schedule=schedule if schedule is not None else OFFICIAL),
    )


class DWorld(World):
    """A :class:`World` with a deadline policy (``DeadlinePolicy.standard()`` by
    default) and working days on ``schedule`` (the official one by default). Pass
    ``clock`` to share a clock, and ``engine`` (with its clock) to drive a second
    round on the same engine."""

    def __init__(
        self,
        deadlines: DeadlinePolicy | None = None,
        *,
        schedule: HolidaySchedule | None = None,
        policy: RolePolicy | None = None,
        start: datetime = START,
        log: EventLog | None = None,
        hooks: Hooks | None = None,
        round_id: str = ROUND,
        id_prefix: str = "ev",
        units: Mapping[str, tuple[str, str]] = UNITS,
        engine: Engine | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        # World's attributes, without the deadline-less engine World would build
        self.clock = clock if clock is not None else ManualClock(start)
        if engine is not None:
            assert engine.clock is self.clock, "a shared engine comes with its clock"
            self.engine = engine
        else:
            counter = itertools.count(1)
            self.engine = Engine(
                clock=self.clock,
                log=log if log is not None else InMemoryEventLog(),
                process=process(
                    deadlines if deadlines is not None else DeadlinePolicy.standard(),
                    schedule,
                    policy,
                ),
                hooks=hooks,
                ids=lambda: f"{id_prefix}-{next(counter):06d}",
            )
        self.round_id = round_id
        self.drv = Driver(self.engine, round_id, f"{id_prefix}:{round_id}")
        self.cast = self.drv.cast
        self.units = dict(units)
        self.start_day = start.date()

    # -- building --------------------------------------------------------------------
    def unit_payload(self, unit_id: str) -> dict[str, Any]:
        """As :meth:`World.unit_payload`, with the unit's head and leader in charge."""
        return {
            **super().unit_payload(unit_id),
            "head": f"{unit_id}-head",
            "leader_in_charge": f"{unit_id}-leader-in-charge",
        }

    def planned(self, items: Mapping[str, Sequence[str]], *, due: date | None = None) -> None:
        """Through feedback, each item with one measure due on ``due`` (45 days after
        feedback by default), plans approved: the round is in rectification."""
        self.to_feedback(items)
        for unit_id in items:
            self.claim_all(unit_id)
            for item_id in items[unit_id]:
                self.add_measure(item_id, due=due)
            self.do("unit", unit_id, "submit_plan")
            self.do("unit", unit_id, "approve_plan")

    def transfer_lead(self, lead_id: str, item_id: str, on: date) -> None:
        self.do(
            "lead",
            lead_id,
            "transfer",
            {
                "item_ids": [item_id],
                "receiver": "discipline_commission",
                "receiver_org": "jw",
                "summary": "涉嫌违纪问题线索",
                "transferred_on": on.isoformat(),
            },
        )

    # -- reading ---------------------------------------------------------------------
    def deadline(self, deadline_id: str) -> Deadline:
        return self.state.deadlines[deadline_id]

    def deadline_ids(self, state: str | None = None) -> set[str]:
        return {d.id for d in self.state.deadlines.values() if state is None or d.state == state}

    def log_firings(self) -> list[tuple[str, str]]:
        return log_firings(self.engine.log, self.round_id)

    # -- time ------------------------------------------------------------------------
    def sweep_at(self, moment: datetime, **kwargs: Any) -> SweepReport:
        """Move the clock to ``moment`` (never back) and sweep at that time."""
        if moment > self.clock.now():
            self.clock.set(moment)
        return self.engine.sweep(moment, **kwargs)

    # -- deadline commands -------------------------------------------------------------
    def extend(
        self,
        deadline_id: str,
        due: date,
        *,
        actor: Actor | None = None,
        reason: str | None = "因客观原因申请延期，经批准",
    ) -> tuple[Event, ...]:
        return self.do(  # type: ignore[no-any-return]
            "deadline", deadline_id, "extend", {"due": due.isoformat()}, actor=actor, reason=reason
        )


# -- a round to start property examples from -------------------------------------------------
ITEMS: dict[str, list[str]] = {"U-1": ["P-1", "P-2", "P-3"], "U-2": ["P-4", "P-5"]}


@functools.cache
def claimed_round(policy: DeadlinePolicy) -> tuple[tuple[Event, ...], datetime]:
    """The events of a round fed back on 11 May 2026 under ``policy`` with every item
    of :data:`ITEMS` claimed (no measures yet), and the clock's time at its end.
    Built once per policy; :func:`resume` starts a fresh engine from it in a few ms."""
    w = DWorld(policy, id_prefix="base")
    w.to_feedback(ITEMS)
    for unit_id in ITEMS:
        w.claim_all(unit_id)
    return tuple(w.events()), w.clock.now()


def resume(policy: DeadlinePolicy, *, hooks: Hooks | None = None, prefix: str = "x") -> DWorld:
    """A fresh engine and world over a copy of :func:`claimed_round`'s log, counting
    working days on the official schedule plus the MADE-UP 2027 data."""
    events, now = claimed_round(policy)
    log = InMemoryEventLog()
    log.append(ROUND, 0, list(events))
    return DWorld(
        policy,
        schedule=with_fake_2027(),
        log=log,
        clock=ManualClock(now),
        hooks=hooks,
        id_prefix=prefix,
    )


def approve_plans(w: DWorld, due: Sequence[date]) -> None:
    """Give the items of :data:`ITEMS`, in order, one measure each due on ``due[i]``
    (a measure id ``M-<item>``), submit and approve both plans."""
    items = [i for ids in ITEMS.values() for i in ids]
    assert len(due) == len(items)
    for item_id, day in zip(items, due, strict=True):
        w.add_measure(item_id, f"M-{item_id}", due=day)
    for unit_id in ITEMS:
        w.do("unit", unit_id, "submit_plan")
        w.do("unit", unit_id, "approve_plan")
