"""Shared builders for the engine's behaviour tests.

A :class:`World` is one engine on a :class:`~xuncha_flow.ManualClock` with
deterministic event ids and a :class:`~xuncha_flow.testing.RoundDriver` for one
round. Its methods take a round through the stages a test needs, so each test
says only what it is about::

    w = World()
    w.to_feedback({"U-1": ["P-1", "P-2"]})   # round in rectify, items fed back
    w.plan("U-1")                             # claimed, measures, plan approved
    w.finish("P-1")                           # measures done, submitted, verified, closed

Dates are relative to the clock's start, so a world may start in any year.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    Engine,
    Event,
    EventLog,
    Hooks,
    InMemoryEventLog,
    Process,
    Role,
    RolePolicy,
    RoundState,
    snapshot,
)
from xuncha_flow.testing import Cast, ManualClock, RoundDriver

__all__ = [
    "ROUND",
    "START",
    "UNITS",
    "Driver",
    "PlainLog",
    "World",
    "at",
    "fingerprint",
    "open_on_site",
]

ROUND = "R-1"
START = datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE)

# unit id -> (organization id, team id)
UNITS: dict[str, tuple[str, str]] = {
    "U-1": ("org-1", "team-1"),
    "U-2": ("org-2", "team-2"),
}

ONSITE_DAYS = 7  # on-site starts a week after the round is opened
ONSITE_LENGTH = 40  # about 40 days for a county round (DOMAIN.md §3)
FEEDBACK_DAYS = 70  # feedback about a month after leaving site


def open_on_site(engine: Engine, clock: ManualClock, round_id: str = ROUND) -> RoundDriver:
    """Open a round with one unit U-1 (县教育局党组, org-edu, team-1) and send its team on
    site on 9 March 2026 (the clock moves there)."""
    drv = RoundDriver(engine, round_id)
    drv.round("open", {"name": "测试轮次", "level": "county"})
    drv.do(
        "unit",
        "U-1",
        "add",
        {
            "name": "县教育局党组",
            "organization_id": "org-edu",
            "team_id": "team-1",
            "onsite_start": "2026-03-09",
        },
    )
    drv.round("approve")
    clock.set(datetime(2026, 3, 9, 10, tzinfo=DEFAULT_TIMEZONE))
    drv.round("launch")
    return drv


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=DEFAULT_TIMEZONE)


def fingerprint(engine: Engine, round_id: str = ROUND) -> tuple[Any, ...]:
    """Everything a refused command must leave unchanged: the state's snapshot,
    version and head, and the log's length for the round."""
    state = engine.state(round_id)
    return (
        snapshot(state).model_dump(mode="json"),
        state.version,
        state.head,
        len(list(engine.log.read(round_id))),
        engine.log.version(round_id),
    )


class Driver(RoundDriver):
    """A :class:`RoundDriver` whose command ids carry a prefix, so that several
    engines sharing one log (one driver each) never reuse each other's command ids."""

    def __init__(self, engine: Engine, round_id: str, prefix: str) -> None:
        super().__init__(engine, round_id)
        self.prefix = prefix
        self.sent = 0

    def _command_id(self) -> str:
        self.sent += 1
        return f"{self.prefix}:{self.round_id}:cmd:{self.sent}"


class World:
    """One engine, one clock, one round driver."""

    def __init__(
        self,
        *,
        policy: RolePolicy | None = None,
        start: datetime = START,
        log: EventLog | None = None,
        hooks: Hooks | None = None,
        round_id: str = ROUND,
        id_prefix: str = "ev",
        units: Mapping[str, tuple[str, str]] = UNITS,
    ) -> None:
        self.clock = ManualClock(start)
        counter = itertools.count(1)
        self.engine = Engine(
            clock=self.clock,
            log=log,
            process=Process.standard(policy),
            hooks=hooks,
            ids=lambda: f"{id_prefix}-{next(counter):06d}",
        )
        self.round_id = round_id
        self.drv = Driver(self.engine, round_id, id_prefix)
        self.cast: Cast = self.drv.cast
        self.units = dict(units)
        self.start_day = start.date()

    # -- reading ---------------------------------------------------------------------
    @property
    def state(self) -> RoundState:
        return self.engine.state(self.round_id)

    def item_state(self, item_id: str) -> str:
        return self.state.items[item_id].state

    def unit_state(self, unit_id: str) -> str:
        return self.state.units[unit_id].state

    def round_state(self) -> str:
        rnd = self.state.round
        assert rnd is not None
        return rnd.state

    def events(self) -> list[Event]:
        return list(self.engine.log.read(self.round_id))

    # -- dates -----------------------------------------------------------------------
    @property
    def onsite_start(self) -> date:
        return self.start_day + timedelta(days=ONSITE_DAYS)

    @property
    def onsite_end(self) -> date:
        return self.onsite_start + timedelta(days=ONSITE_LENGTH)

    @property
    def feedback_day(self) -> date:
        return self.start_day + timedelta(days=FEEDBACK_DAYS)

    def move_to(self, day: date, hour: int = 10) -> None:
        """Move the clock to ``day`` unless it is already later."""
        moment = at(day, hour)
        if moment > self.clock.now():
            self.clock.set(moment)

    # -- actors ----------------------------------------------------------------------
    def unit_actor(self, unit_id: str) -> Actor:
        return self.cast.unit(self.units[unit_id][0])

    def team_actor(self, unit_id: str) -> Actor:
        return self.cast.team(self.units[unit_id][1])

    @staticmethod
    def actor(role: Role, organization: str, person: str = "someone") -> Actor:
        return Actor(id=person, role=role, organization=organization)

    @property
    def reviewer(self) -> Actor:
        """A standing body of the policy's verifiers: it reviews plans and changes to
        them (approves a measure added after approval, drops a measure of an approved
        plan)."""
        verifiers = self.engine.process.policy.verifiers
        for role in (
            Role.SUPERVISION_OFFICE,
            Role.INSPECTION_OFFICE,
            Role.DISCIPLINE_COMMISSION,
            Role.ORGANIZATION_DEPARTMENT,
        ):
            actor = self.cast.standing(role)
            if role in verifiers and actor is not None:
                return actor
        raise AssertionError(f"no standing body among the verifiers {sorted(verifiers)}")

    # -- firing ----------------------------------------------------------------------
    def do(self, kind: Any, subject: str, event: str, payload: Any = None, **kw: Any) -> Any:
        return self.drv.do(kind, subject, event, payload, **kw)

    def round(self, event: str, payload: Any = None, **kw: Any) -> Any:
        return self.drv.round(event, payload, **kw)

    # -- building blocks -------------------------------------------------------------
    def open(self, units: Iterable[str] | None = None, *, approve: bool = True) -> None:
        """Open the round (prepare), add the units, approve the plan (mobilize)."""
        self.round(
            "open",
            {
                "name": "测试轮次",
                "level": "county",
                "kind": "regular",
                "planned_start": self.onsite_start.isoformat(),
            },
        )
        for unit_id in units if units is not None else self.units:
            self.do("unit", unit_id, "add", self.unit_payload(unit_id))
        if approve:
            self.round("approve")

    def unit_payload(self, unit_id: str) -> dict[str, Any]:
        """What :meth:`open` adds each unit with."""
        org, team = self.units[unit_id]
        return {
            "name": f"{unit_id} 党组",
            "organization_id": org,
            "team_id": team,
            "onsite_start": self.onsite_start.isoformat(),
            "onsite_end": self.onsite_end.isoformat(),
        }

    def launch(self) -> None:
        """Go on site: every unit enters."""
        self.move_to(self.onsite_start)
        self.round("launch")

    def record(self, unit_id: str, *item_ids: str, **fields: Any) -> None:
        for item_id in item_ids:
            self.do(
                "item",
                item_id,
                "record",
                {"unit_id": unit_id, "description": f"问题 {item_id}", **fields},
            )

    def confirm_found(self, unit_id: str) -> None:
        """Confirm every item of the unit still in ``found``."""
        for item in list(self.state.unit_items(unit_id)):
            if item.state == "found":
                self.do("item", item.id, "confirm")

    def leave(self, unit_id: str) -> None:
        self.move_to(self.onsite_end, 17)
        self.do("unit", unit_id, "leave_site")

    def decide(self, unit_id: str) -> None:
        self.do("unit", unit_id, "decide_report")

    def feed_back(self, unit_id: str, on: date | None = None) -> None:
        day = on or self.feedback_day
        self.move_to(max(day, self.feedback_day))
        self.do(
            "unit",
            unit_id,
            "deliver_feedback",
            {"delivered_on": day.isoformat(), "mode": "collective"},
        )

    def unit_to_feedback(self, unit_id: str) -> None:
        """Confirm, leave site, decide the report and deliver feedback for one unit."""
        self.confirm_found(unit_id)
        self.leave(unit_id)
        self.decide(unit_id)
        self.feed_back(unit_id)

    def to_onsite(self, items: Mapping[str, Sequence[str]]) -> None:
        """Open, launch and record ``items`` (unit id -> item ids)."""
        self.open(items.keys())
        self.launch()
        for unit_id, ids in items.items():
            self.record(unit_id, *ids)

    def to_feedback(
        self, items: Mapping[str, Sequence[str]], *, start_rectification: bool = True
    ) -> None:
        """Open, launch, record and confirm ``items``, leave site, decide the
        reports, deliver feedback; the round is then in ``rectify`` (or in
        ``feedback`` when ``start_rectification`` is False)."""
        self.to_onsite(items)
        for unit_id in items:
            self.confirm_found(unit_id)
            self.leave(unit_id)
        self.round("conclude_onsite")
        for unit_id in items:
            self.decide(unit_id)
        self.round("conclude_report")
        for unit_id in items:
            self.feed_back(unit_id)
        if start_rectification:
            self.round("start_rectification")

    def add_measure(
        self,
        item_id: str,
        measure_id: str | None = None,
        *,
        due: date | None = None,
        **fields: Any,
    ) -> str:
        measure_id = measure_id or f"M-{item_id}-{len(self.state.items[item_id].measure_ids) + 1}"
        payload = {
            "item_id": item_id,
            "text": f"整改措施 {measure_id}",
            "responsible_leader": "leader-1",
            "responsible_person": "person-1",
            "due_date": (due or self.feedback_day + timedelta(days=45)).isoformat(),
            **fields,
        }
        self.do("measure", measure_id, "add", {k: v for k, v in payload.items() if v is not None})
        return measure_id

    def add_approved_measure(
        self, item_id: str, measure_id: str | None = None, *, due: date | None = None
    ) -> str:
        """Add a measure to an approved plan: the unit proposes it (待审核), the
        reviewing body approves it."""
        measure_id = self.add_measure(item_id, measure_id, due=due)
        assert self.state.measures[measure_id].state == "proposed"
        self.do("measure", measure_id, "approve")
        return measure_id

    def claim_all(self, unit_id: str) -> None:
        for item in list(self.state.leaves(unit_id)):
            if item.state == "fed_back":
                self.do("item", item.id, "claim")

    def plan(self, unit_id: str, *, approve: bool = True) -> None:
        """Claim every fed-back leaf, give each claimed leaf without a live measure
        a complete measure, submit the plan and (by default) approve it."""
        self.claim_all(unit_id)
        for item in list(self.state.leaves(unit_id)):
            if item.state == "claimed" and not item.measure_ids:
                self.add_measure(item.id)
        self.do("unit", unit_id, "submit_plan")
        if approve:
            self.do("unit", unit_id, "approve_plan")

    def do_measures(self, item_id: str) -> None:
        for measure_id in self.state.items[item_id].measure_ids:
            measure = self.state.measures[measure_id]
            if measure.state == "planned":
                self.do("measure", measure_id, "start")
                measure = self.state.measures[measure_id]
            if measure.state == "in_progress":
                self.do(
                    "measure", measure_id, "complete", {"done_on": self.clock.today().isoformat()}
                )

    def submit(self, item_id: str, payload: Mapping[str, Any] | None = None) -> None:
        self.do(
            "item",
            item_id,
            "submit",
            dict(payload or {"summary": "整改完成"}),
            attachments=[f"evidence/{item_id}.pdf"],
        )

    def finish(self, item_id: str, payload: Mapping[str, Any] | None = None) -> None:
        """Complete the item's measures, submit with evidence, verify, close."""
        self.do_measures(item_id)
        self.submit(item_id, payload)
        self.do("item", item_id, "verify")
        self.do("item", item_id, "close")

    def report(self, unit_id: str) -> None:
        self.do("unit", unit_id, "report_rectification")

    def close_round(self, units: Iterable[str]) -> None:
        """From every unit's items settled: rectification reports, publication,
        evaluation, the round closed."""
        units = list(units)
        for unit_id in units:
            self.report(unit_id)
        self.round("publish")
        for unit_id in units:
            self.do("unit", unit_id, "publish", {"in_party": True, "public": True})
        self.round("start_evaluation")
        for unit_id in units:
            self.do("unit", unit_id, "evaluate", {"score": "92.5", "grade": "good"})
        self.round("close")


class PlainLog(EventLog):
    """A minimal adapter: the four abstract methods, over an in-memory log, and
    nothing else (no due index, no outbox)."""

    def __init__(self) -> None:
        self.inner = InMemoryEventLog()

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        self.inner.append(stream, expected_version, events)

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        return self.inner.read(stream, after)

    def streams(self) -> list[str]:
        return self.inner.streams()

    def version(self, stream: str) -> int:
        return self.inner.version(stream)
