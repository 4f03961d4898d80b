"""Property tests of the engine (issue 2, item 10).

:class:`RoundMachine`, a hypothesis ``RuleBasedStateMachine``, runs one small round
per example (one to three inspected units, a few problems each) under one of four
processes — the three role policies (监督办; 巡察办 + 纪委监委 + 组织部; 巡察办 + 巡察组)
and the first again with the supervision deadline policy (ladders, daily reports,
weekly bulletins) — and fires commands at it:

* ``push`` / ``push_many`` — a next step of the process (an event possible from a
  subject's state, or a new unit, problem, measure or lead) with a valid payload,
  evidence, a reason and an actor allowed to fire it, so rounds get through
  feedback, planning, rectification, refinement, long-term items, rejection,
  closing, leads reconciled, publication, evaluation, archiving and reopening by a
  look-back;
* ``wrong_actor`` — such a step fired by an actor who may not fire it (wrong role,
  another unit's organization, another team, the wrong lead receiver, anyone of
  the organization that owns the subject acting on it in another role than the
  owner's, an impostor in the engine's own name): it must be refused with exactly
  :class:`PermissionDenied` or :class:`SeparationOfDuties`;
* ``random_command`` — any event of any kind on any subject (existing or not), by
  any actor, with a valid, empty or broken payload, with or without a reason or
  evidence;
* ``push`` again, but while a host hook fails (a before hook vetoes, or an after
  hook raises once the events are applied): what would be accepted is refused;
* ``advance_clock``, ``sweep`` (what is due is recorded: rungs, recommendations,
  missing reports) and ``resend`` (a command sent again with its id is applied
  once; the id reused for another command is refused).

Every refused command (any :class:`XunchaError`) must leave the round's state and
its log exactly as they were; anything else raised is a bug. After every step
the invariants below hold; ``push_many`` checks them after each of its commands.

Events are checked once, in order, as they reach the log (``events_are_sound``):

* versions are consecutive from 1, each event links to the previous hash and
  matches its own hash, and folding the events one by one (what :func:`replay`
  does) gives exactly the live state — the full replay, the hash chain and a fresh
  engine over the same log are checked again at the end of each example;
* the actor's role is one the definition allows for the transition taken (or the
  creation event), an automatic event is an automatic transition and only then,
  the actor acts for the subject's unit, team or lead as the rules require, and
  no organization ever judged its own work: no command's event on a subject was
  fired by an actor of the subject's owner (the unit's organization for its unit,
  items and measures and for the deadlines and recommendations on them, the
  receiver for a lead) except in the owner's own role, and never an
  ``independent`` one (plan review, verify, close, reject, withdraw, long-term,
  evaluation, extensions, pauses, decisions);
* no stage moves backwards (lower rank) unless the transition is marked backward,
  and backward transitions are only the explicit reopen / return ones;
* a transition that requires a reason has one;
* when a unit reported its rectification, every leaf item of the unit was closed,
  withdrawn or long-term with milestones;
* when an item was closed, it had a submission with evidence verified by a
  verifier from outside the rectifying organization;
* a lead is reconciled at most once.

State invariants (checked on the live state): closed items verified
independently; no open item in a unit that reported its rectification; a refined
parent is closed or withdrawn exactly when all children are, closed exactly when
at least one child is closed; the completion rate is closed / (leaves - withdrawn)
in [0, 1] or None; lead reconciliation recorded consistently; the round's stage
never ahead of its units.

Examples per run come from the hypothesis profile (``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    SWEEPER,
    Actor,
    AfterContext,
    BeforeContext,
    DeadlinePolicy,
    Definition,
    Engine,
    Event,
    EventLog,
    HookFailed,
    Hooks,
    InMemoryEventLog,
    InvalidCommand,
    LogCorrupted,
    PermissionDenied,
    Plan,
    Process,
    Role,
    RolePolicy,
    RoundState,
    SeparationOfDuties,
    Vetoed,
    XunchaError,
    genesis_hash,
    outcome_figures,
    replay,
    same_organization,
    snapshot,
)
from xuncha_flow._effects import apply_event, current  # replay() is a fold of apply_event
from xuncha_flow._model import Item, Unit
from xuncha_flow.payloads import PAYLOADS
from xuncha_flow.testing import Cast, ManualClock, RoundDriver

T = TypeVar("T")

ROUND = "R-1"
OTHER_ROUND = "R-404"
LOOKBACK_ROUND = "R-LB-1"
START = date(2026, 3, 2)
TEAMS = ("team-1", "team-2")
MAX_UNITS = 3
MAX_PROBLEMS = 3  # problems recorded per unit (refinement adds children)
MAX_LEAVES = 5  # no refinement beyond this many leaf items per unit
MAX_LEADS = 2
REASON = "依据核查情况"
IMPOSTOR = Actor(id="xuncha_flow.sweep", role=Role.SUPERVISION_OFFICE, organization="jdb")
"""A command in the engine's own name (its sweeps'): always refused."""

PROCESSES = {
    **{
        p.name: Process.standard(p)
        for p in (
            RolePolicy.supervision_office(),
            RolePolicy.joint_supervision(),
            RolePolicy.three_party(),
        )
    },
    # with deadlines, ladders, daily reports and weekly bulletins: automatic events
    # (deadlines opened, met, cancelled, escalated; recommendations) join the log
    "supervision_office+deadlines": Process.standard(
        RolePolicy.supervision_office(), deadlines=DeadlinePolicy.supervision()
    ),
}
RECEIVER_ORG = {"discipline_commission": "jw", "organization_department": "zzb", "other": "fd-1"}
RECEIVER_ROLE = {
    "discipline_commission": Role.DISCIPLINE_COMMISSION,
    "organization_department": Role.ORGANIZATION_DEPARTMENT,
    "other": Role.FUNCTIONAL_DEPARTMENT,
}
PREFIX = {
    "unit": "U",
    "item": "P",
    "measure": "M",
    "lead": "L",
    "deadline": "D",
    "recommendation": "REC",
}

DONE = frozenset({"closed", "withdrawn"})
PLANNABLE = frozenset({"claimed", "planned", "rectifying", "long_term"})
REPORTED = frozenset({"rectification_reported", "published", "evaluated"})
LONG_TERM_LIVE = frozenset({"long_term", "submitted", "verified"})
# events that undo progress, or only annotate it: pushed less often
STEPS_BACK = frozenset(
    {
        "withdraw",
        "reject",
        "return_plan",
        "order_second_rectification",
        "reopen",
        "drop",
        "refuse",
        "revise",
        "report_progress",
        "publish_bulletin",
        "daily_report",
        "extend",
        "pause",
        "resume",
    }
)
# the only events allowed to move a subject to a lower-ranked state
EXPLICIT_BACKWARD = frozenset(
    {"reopen", "reopen_parent", "reject", "return_plan", "unplan", "order_second_rectification"}
)
# round stage -> the stage every unit has at least reached
ROUND_NEEDS = {
    "onsite": "onsite",
    "report": "reporting",
    "feedback": "report_decided",
    "rectify": "fed_back",
    "publish": "rectification_reported",
    "evaluate": "published",
    "closed": "evaluated",
    "archived": "archived",
}

# (kind, event) pairs with a payload model that Scenario.payload fills in; events of
# any other pair with a payload model are only fired by random_command
PAYLOADS_FILLED = frozenset(
    {
        ("round", "open"),
        ("round", "launch"),
        ("round", "publish_bulletin"),
        ("unit", "add"),
        ("unit", "deliver_feedback"),
        ("unit", "publish"),
        ("unit", "evaluate"),
        ("unit", "daily_report"),
        ("item", "record"),
        ("item", "claim"),
        ("item", "refine"),
        ("item", "mark_long_term"),
        ("item", "complete_milestone"),
        ("item", "submit"),
        ("item", "verify"),
        ("item", "reopen"),
        ("measure", "add"),
        ("measure", "revise"),
        ("measure", "report_progress"),
        ("measure", "complete"),
        ("lead", "transfer"),
        ("lead", "conclude"),
        ("lead", "report_back"),
        ("deadline", "extend"),
    }
)
PAYLOADS_MADE = frozenset(
    (kind, e.name)
    for kind, d in next(iter(PROCESSES.values())).definitions.items()
    for e in d.events
    if (kind, e.name) not in PAYLOADS or (kind, e.name) in PAYLOADS_FILLED
)

SABOTAGE = {"before": Vetoed, "after": HookFailed}
"""The error a command is refused with when a host hook fails at that point."""

COVERAGE: Counter[str] = Counter()
"""Event types reached, over all examples of the run (for measuring the tests)."""
OUTCOMES: Counter[str] = Counter()
"""Commands accepted and refused (by error), over all examples of the run."""


def iso(day: date) -> str:
    return day.isoformat()


def frozen(state: RoundState) -> tuple[Any, ...]:
    """Everything a round's state holds, copied: records are immutable, so copies of
    its tables compare equal exactly when nothing changed."""
    return tuple(
        (name, dict(value) if isinstance(value, dict) else value)
        for name in sorted(RoundState.__slots__)
        if name != "_journal"
        for value in (getattr(state, name),)
    )


# -- choices: hypothesis draws in the state machine, a seeded RNG elsewhere ------------
class Chooser(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...

    def integer(self, lo: int, hi: int) -> int: ...

    def subset(self, options: Sequence[T], max_size: int) -> list[T]: ...


class Drawn:
    """Choices drawn by hypothesis (so they shrink)."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def subset(self, options: Sequence[T], max_size: int) -> list[T]:
        if not options:
            return []
        return self.data.draw(st.lists(st.sampled_from(options), unique=True, max_size=max_size))


class Seeded:
    """Choices from a seeded RNG, for deterministic runs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def subset(self, options: Sequence[T], max_size: int) -> list[T]:
        return self.rng.sample(list(options), self.rng.randint(0, min(max_size, len(options))))


class Step(NamedTuple):
    """A command to try: ``subject`` None means a new subject (a creation event);
    ``parent`` is the unit of a new problem or the item of a new measure."""

    kind: str
    subject: str | None
    event: str
    parent: str | None = None


# -- one round under test ----------------------------------------------------------------
class Scenario:
    """One engine, one round, and the checks of every invariant."""

    def __init__(
        self, policy: str, units: Sequence[tuple[str | None, int | None]], choose: Chooser
    ) -> None:
        self.process = PROCESSES[policy]
        self.defs: dict[str, Definition] = self.process.definitions
        self.verifiers = self.process.policy.verifiers
        self.clock = ManualClock(
            datetime(START.year, START.month, START.day, 9, tzinfo=DEFAULT_TIMEZONE)
        )
        ids = itertools.count(1)
        # the host's hooks fail on demand: a refusal after the events were applied
        # (an after hook) must be rolled back as completely as one before
        self.sabotage: str | None = None
        hooks = Hooks()
        hooks.before(self._before_hook)
        hooks.after(self._after_hook)
        self.engine = Engine(
            clock=self.clock, process=self.process, hooks=hooks, ids=lambda: f"ev-{next(ids)}"
        )
        self.log = self.engine.log
        self.driver = RoundDriver(self.engine, ROUND)
        self.cast = Cast()
        self.serial = itertools.count(1)
        self.accepted: list[tuple[dict[str, Any], tuple[Event, ...]]] = []
        self.outcomes: Counter[str] = Counter()
        # what the events checked so far fold into (see check_log)
        self.shadow = RoundState(ROUND, genesis_hash(ROUND))
        self.hashes: list[str] = []
        self.reconciled: Counter[str] = Counter()
        self.say: Callable[[str], None] = note if currently_in_test_context() else _quiet
        self.choose = choose

        open_round = self.command(
            "round",
            ROUND,
            "open",
            {"name": "十五届县委第一轮巡察", "level": "county", "theme": "营商环境"},
            self.cast.office,
        )
        opened = self.engine.execute(open_round)
        self.accepted.append((open_round, opened))
        COVERAGE.update(e.type for e in opened)
        for n, (team, onsite) in enumerate(units, start=1):
            payload: dict[str, Any] = {"name": f"被巡察单位 {n}", "organization_id": f"org-{n}"}
            if team is not None:
                payload["team_id"] = team
            if onsite is not None:
                payload["onsite_start"] = iso(START + timedelta(days=onsite))
                payload["onsite_end"] = iso(START + timedelta(days=onsite + 40))
            unit_id = self.new_id("unit")
            added = self.attempt(self.command("unit", unit_id, "add", payload, self.cast.office))
            assert added is not None

    def _before_hook(self, ctx: BeforeContext) -> None:
        if self.sabotage == "before":
            raise Vetoed(f"the host refuses {ctx.type}")

    def _after_hook(self, ctx: AfterContext) -> None:
        if self.sabotage == "after":
            raise RuntimeError(f"the host failed after {len(ctx.events)} events")

    # -- reading ---------------------------------------------------------------------
    @property
    def state(self) -> RoundState:
        return self.engine.state(ROUND)

    def today(self) -> date:
        return self.clock.now().date()

    def new_id(self, kind: str) -> str:
        return f"{PREFIX[kind]}-{next(self.serial)}"

    def log_view(self) -> tuple[Any, ...]:
        return (tuple(self.log.streams()), tuple(e.hash for e in self.log.read(ROUND)))

    def unit_for(
        self, state: RoundState, kind: str, subject: str, payload: dict[str, Any]
    ) -> Unit | None:
        """The unit a subject belongs to (for a new one, the unit its payload names)."""
        if kind == "unit":
            return state.units.get(subject)
        if kind == "item":
            item = state.items.get(subject)
            unit_id = item.unit_id if item is not None else payload.get("unit_id")
            return state.units.get(str(unit_id))
        if kind == "measure":
            measure = state.measures.get(subject)
            item_id = measure.item_id if measure is not None else payload.get("item_id")
            item = state.items.get(str(item_id))
            return state.units.get(item.unit_id) if item is not None else None
        return None

    def actor_pool(self) -> list[Actor]:
        """Right and wrong actors: every standing body, each unit's own organization,
        every team, lead receivers (right and wrong), strangers, and for each unit an
        actor of every other role who works for the unit's own organization."""
        c = self.cast
        pool = [
            c.office,
            c.leading_group,
            c.secretary,
            c.supervision,
            c.discipline,
            c.organization_dept,
            c.unit("org-x"),
            c.team("team-x"),
            c.functional("fd-1"),
            c.functional("fd-2"),
            Actor(id="jw2-staff", role=Role.DISCIPLINE_COMMISSION, organization="jw-2"),
            *(c.team(t) for t in TEAMS),
            IMPOSTOR,
        ]
        for unit in self.state.units.values():
            pool.append(c.unit(unit.organization_id))
            pool.extend(
                Actor(
                    id=f"{unit.organization_id}-{r.value}",
                    role=r,
                    organization=unit.organization_id,
                )
                for r in Role
                if r is not Role.INSPECTED_ORGANIZATION
            )
        return pool

    def expected_denial(
        self, actor: Actor, kind: str, subject: str, event: str, payload: dict[str, Any]
    ) -> type[PermissionDenied] | None:
        """The authorization rules (issue 2): the error the engine must raise when
        ``actor`` fires a step that is otherwise possible, or None if allowed."""
        state, d = self.state, self.defs[kind]
        record = current(state, kind, subject)
        if record is None:
            roles, independent = d.data.create.roles, False
        else:
            spec = d.candidates(event, d.state_by_value(record.state).name)[0]
            roles, independent = spec.roles, spec.independent
        if actor.role not in roles or actor is IMPOSTOR:
            return PermissionDenied
        unit = self.unit_for(state, kind, subject, payload)
        if unit is not None:
            if actor.role is Role.INSPECTED_ORGANIZATION and not same_organization(
                actor.organization, unit.organization_id
            ):
                return PermissionDenied
            if (
                actor.role is Role.INSPECTION_TEAM
                and unit.team_id
                and not same_organization(actor.organization, unit.team_id)
            ):
                return PermissionDenied
        if (
            kind == "lead"
            and record is not None
            and actor.role in RECEIVER_ROLE.values()
            and (
                actor.role is not RECEIVER_ROLE[record.receiver]
                or not same_organization(actor.organization, record.receiver_org)
            )
        ):
            return PermissionDenied
        if self.judges_own_work(state, actor, kind, subject, payload, independent):
            return SeparationOfDuties
        return None

    def owner(
        self, state: RoundState, kind: str, subject: str, payload: dict[str, Any]
    ) -> tuple[str, Role | None] | None:
        """Who answers for a subject, and in which role it acts on it (None: it may
        not act on it at all): the unit's organization for its unit, items and
        measures (as the inspected organization) and for the deadlines and
        recommendations on them (not at all); a lead's receiver for its lead."""
        if kind in ("unit", "item", "measure"):
            unit = self.unit_for(state, kind, subject, payload)
            return (unit.organization_id, Role.INSPECTED_ORGANIZATION) if unit else None
        if kind == "lead":
            lead = state.leads.get(subject)
            return (lead.receiver_org, RECEIVER_ROLE[lead.receiver]) if lead else None
        if kind == "recommendation" and subject in state.recommendations:
            return self.owner(state, "deadline", state.recommendations[subject].deadline_id, {})
        if kind == "deadline" and subject in state.deadlines:
            deadline = state.deadlines[subject]
            found = self.owner(state, deadline.subject_kind, deadline.subject, {})
            return (found[0], None) if found else None
        return None

    def judges_own_work(
        self,
        state: RoundState,
        actor: Actor,
        kind: str,
        subject: str,
        payload: dict[str, Any],
        independent: bool,
    ) -> bool:
        """Whether ``actor`` would judge its own organization's work (the owner rule)."""
        owner = self.owner(state, kind, subject, payload)
        if owner is None or not same_organization(actor.organization, owner[0]):
            return False
        return independent or owner[1] is None or actor.role is not owner[1]

    # -- commands ----------------------------------------------------------------------
    def command(
        self,
        kind: str,
        subject: str,
        event: str,
        payload: dict[str, Any],
        actor: Actor,
        *,
        reason: str | None = None,
        attachments: Sequence[str] = (),
        round_id: str = ROUND,
    ) -> dict[str, Any]:
        return {
            "command_id": f"cmd-{next(self.serial)}",
            "round_id": round_id,
            "kind": kind,
            "subject": subject,
            "event": event,
            "actor": actor,
            "payload": payload,
            "reason": reason,
            "attachments": tuple(attachments),
        }

    def attempt(
        self,
        cmd: dict[str, Any],
        *,
        expect: type[XunchaError] | None = None,
        permitted: bool = False,
    ) -> tuple[Event, ...] | None:
        """Execute ``cmd``. A refusal must change nothing; ``expect`` is the exact
        error it must be refused with; ``permitted`` says the actor may fire it (so it
        must not be refused for permission)."""
        state = self.state
        before, log_before, version = frozen(state), self.log_view(), state.version
        self.say(
            f"{cmd['actor']} ({cmd['actor'].role.value}) {cmd['kind']}.{cmd['event']} "
            f"{cmd['subject']} {cmd['payload']} reason={cmd['reason']!r} "
            f"attachments={cmd['attachments']}"
        )
        refused: XunchaError | None = None
        events: tuple[Event, ...] = ()
        try:
            events = self.engine.execute(cmd)
        except XunchaError as exc:
            refused = exc
        if refused is not None:
            what = type(refused).__name__
            self.say(f"  -> refused: {what}: {refused}")
            self.outcomes[what] += 1
            OUTCOMES[what] += 1
            assert frozen(self.state) == before, f"refused {what} changed the state"
            assert self.log_view() == log_before, f"refused {what} changed the log"
            if expect is not None:
                assert type(refused) is expect, f"expected {expect.__name__}, got {refused!r}"
            if permitted:
                assert not isinstance(refused, PermissionDenied), f"allowed actor: {refused}"
            return None
        self.say(f"  -> {', '.join(e.type for e in events)}")
        assert expect is None, (
            f"{cmd['actor']} fired {cmd['kind']}.{cmd['event']}: expected a {expect}"
        )
        first = version + 1
        assert [e.version for e in events] == list(range(first, first + len(events)))
        assert all(e.command_id == cmd["command_id"] for e in events)
        main = events[0]
        assert (main.kind, main.subject) == (cmd["kind"], cmd["subject"])
        assert not main.automatic
        assert main.event == self.defs[cmd["kind"]].event(cmd["event"]).stored
        assert all(e.automatic for e in events[1:])
        self.outcomes["accepted"] += 1
        OUTCOMES["accepted"] += 1
        self.accepted.append((cmd, events))
        COVERAGE.update(e.type for e in events)
        return events

    def candidates(self) -> list[Step]:
        """Next steps of the process from the round's state."""
        s = self.state
        assert s.round is not None
        out: list[Step] = []
        if s.round.state in ("prepare", "mobilize") and len(s.units) < MAX_UNITS:
            out.append(Step("unit", None, "add"))
        if s.round.state not in ("prepare", "mobilize", "archived") and len(s.leads) < MAX_LEADS:
            out.append(Step("lead", None, "transfer"))
        for unit in s.units.values():
            found = sum(1 for i in s.unit_items(unit.id) if i.parent_id is None)
            if unit.state in ("onsite", "reporting") and found < MAX_PROBLEMS:
                out.append(Step("item", None, "record", unit.id))
        for item in s.leaves():
            live = [
                m for m in item.measure_ids if s.measures[m].state not in ("dropped", "refused")
            ]
            if item.state in PLANNABLE and not live:  # random_command adds more
                out.append(Step("measure", None, "add", item.id))
        subjects: list[tuple[str, Any]] = [("round", s.round)]
        subjects += [("unit", u) for u in s.units.values()]
        subjects += [("item", i) for i in s.items.values()]
        subjects += [("measure", m) for m in s.measures.values()]
        subjects += [("lead", le) for le in s.leads.values()]
        subjects += [("deadline", dl) for dl in s.deadlines.values()]
        subjects += [("recommendation", r) for r in s.recommendations.values()]
        for kind, record in subjects:
            d = self.defs[kind]
            source = d.state_by_value(record.state).name
            for event in d.events_from(source):
                if d.candidates(event, source)[0].automatic or (kind, event) not in PAYLOADS_MADE:
                    continue
                if event == "leave_site" and not record.item_ids:
                    continue  # give the team a chance to find something first
                if event == "refine" and len(list(s.leaves(record.unit_id))) >= MAX_LEAVES:
                    continue
                out.append(Step(kind, record.id, event))
        return out

    def payload(self, kind: str, subject: str, event: str, parent: str | None) -> dict[str, Any]:
        """A valid payload for ``event`` on the subject, as of now."""
        c, s, today = self.choose, self.state, self.today()
        key = (kind, event)
        if key == ("round", "open"):
            return {"name": "另一轮巡察", "level": "city"}
        if key == ("round", "launch"):
            return c.choice([{}, {"petition_closing_date": iso(today + timedelta(days=20))}])
        if key == ("unit", "add"):
            payload: dict[str, Any] = {
                "name": f"单位 {subject}",
                "organization_id": f"org-{subject}",
            }
            team = c.choice([*TEAMS, None])
            if team is not None:
                payload["team_id"] = team
            offset = c.choice([None, 0, 7])
            if offset is not None:
                payload["onsite_start"] = iso(today + timedelta(days=offset))
                payload["onsite_end"] = iso(today + timedelta(days=offset + 40))
            return payload
        if key == ("unit", "deliver_feedback"):
            return {"delivered_on": iso(today), "mode": c.choice(["collective", "written"])}
        if key == ("unit", "publish"):
            return {"in_party": True, "public": c.choice([True, False])}
        if key == ("unit", "evaluate"):
            score, grade = c.choice([("96.5", "good"), ("85", "fairly_good"), ("58", "poor")])
            return {"score": score, "grade": grade}
        if key == ("item", "record"):
            unit_id = parent or c.choice([*sorted(s.units), "U-404"])
            return {
                "unit_id": unit_id,
                "description": f"问题 {subject}",
                "source": c.choice(["interview", "petition", "document_review"]),
                "amount_involved": c.choice(["0", "12345.60"]),
            }
        if key == ("item", "claim"):
            return c.choice([{}, {"claimed_by": "head-1"}])
        if key == ("item", "refine"):
            n = c.integer(2, 3)
            return {
                "children": [
                    {"id": self.new_id("item"), "description": f"细化问题 {k}"} for k in range(n)
                ]
            }
        if key == ("item", "mark_long_term"):
            n = c.integer(1, 2)
            return {
                "milestones": [
                    {"title": f"阶段 {k}", "due": iso(today + timedelta(days=60 * k))}
                    for k in range(1, n + 1)
                ]
            }
        if key == ("item", "complete_milestone"):
            item = s.items.get(subject)
            titles = [m.title for m in item.milestones if m.done_on is None] if item else []
            return {"title": titles[0] if titles else "阶段 1", "done_on": iso(today)}
        if key == ("item", "submit"):
            return {
                "summary": "整改完成",
                "amount_recovered": c.choice(["0", "800.00"]),
                "rules_established": c.choice([[], ["财务审批制度"]]),
                "people_held_accountable": c.integer(0, 2),
            }
        if key == ("item", "verify"):
            return c.choice([{}, {"notes": "现场核实"}])
        if key == ("item", "reopen"):
            return {"lookback_round_id": LOOKBACK_ROUND}
        if key == ("measure", "add"):
            item_id = parent or c.choice([*sorted(s.items), "P-404"])
            unit = self.unit_for(s, "item", item_id, {})
            base = unit.feedback_on if unit is not None and unit.feedback_on else today
            payload = {
                "item_id": item_id,
                "text": "整改措施",
                "responsible_leader": "leader-1",
                "responsible_person": "staff-1",
                "due_date": iso(base + timedelta(days=30)),
            }
            if c.integer(0, 5) == 0:  # an incomplete measure, to be revised
                del payload[c.choice(["responsible_leader", "responsible_person", "due_date"])]
            return payload
        if key == ("measure", "revise"):
            measure = s.measures.get(subject)
            fill: dict[str, Any] = {}
            if measure is not None and not measure.responsible_leader:
                fill["responsible_leader"] = "leader-2"
            if measure is not None and not measure.responsible_person:
                fill["responsible_person"] = "staff-2"
            if measure is not None and measure.due_date is None:
                fill["due_date"] = iso(today + timedelta(days=30))
            return fill or {"text": "修改后的整改措施"}
        if key == ("measure", "report_progress"):
            return {"percent": c.integer(0, 100)}
        if key == ("measure", "complete"):
            return {"done_on": iso(today)}
        if key == ("lead", "transfer"):
            receiver = c.choice(sorted(RECEIVER_ORG))
            return {
                "item_ids": c.subset(sorted(s.items), 2),
                "receiver": receiver,
                "receiver_org": RECEIVER_ORG[receiver],
                "summary": "涉嫌违纪问题线索",
                "transferred_on": iso(today),
            }
        if key == ("lead", "conclude"):
            return {"result": c.choice(["case_opened", "handled", "no_case"])}
        if key == ("lead", "report_back"):
            return {"reported_on": iso(today)}
        if key == ("unit", "daily_report"):
            return {"day": iso(today), "summary": "今日整改进展"}
        if key == ("round", "publish_bulletin"):
            return {"week_of": iso(today), "text": "本周整改通报"}
        if key == ("deadline", "extend"):
            deadline = s.deadlines.get(subject)
            due = deadline.due if deadline is not None else today
            return {"due": iso(due + timedelta(days=c.integer(1, 30)))}
        return {}

    def independent(self, step: Step) -> bool:
        """Whether the step is a check the rectifying organization may not make."""
        record = current(self.state, step.kind, step.subject) if step.subject else None
        if record is None:
            return False
        d = self.defs[step.kind]
        return d.candidates(step.event, d.state_by_value(record.state).name)[0].independent

    def pick_step(self, *, forward: bool) -> tuple[Step, str, dict[str, Any]] | None:
        """A next step, mostly a forward one; or (``forward`` False) any step, half the
        time a check that must be independent of the rectifying organization."""
        candidates = self.candidates()
        if forward:
            ahead = [step for step in candidates if step.event not in STEPS_BACK]
            pool = ahead if ahead and self.choose.integer(0, 9) < 9 else candidates
        else:
            checks = [step for step in candidates if self.independent(step)]
            pool = checks if checks and self.choose.integer(0, 1) == 0 else candidates
        if not pool:
            return None
        step = self.choose.choice(pool)
        subject = step.subject or self.new_id(step.kind)
        return step, subject, self.payload(step.kind, subject, step.event, step.parent)

    # -- the rules' bodies ---------------------------------------------------------------
    def push(self, sabotage: str | None = None) -> None:
        """Fire a next step of the process with an actor allowed to fire it. Up to
        three picks that :meth:`Engine.preview` says would be refused are passed over
        (a preview must change nothing); the fourth is fired whatever it gives, and
        if it is refused too, a day passes. With ``sabotage`` ("before" or "after") a
        host hook fails: what the engine would accept is refused and changes nothing."""
        for tries_left in (3, 2, 1, 0):
            picked = self.pick_step(forward=True)
            if picked is None:
                return
            step, subject, payload = picked
            actor = self.driver.actor_for(step.kind, subject, step.event, payload)  # type: ignore[arg-type]
            if (
                self.expected_denial(actor, step.kind, subject, step.event, payload) is not None
                or self.choose.integer(0, 3) == 0
            ):
                allowed = [
                    a
                    for a in self.actor_pool()
                    if self.expected_denial(a, step.kind, subject, step.event, payload) is None
                ]
                actor = self.choose.choice(allowed) if allowed else actor
            with_evidence = step.event == "submit" or self.choose.integer(0, 3) == 0
            attachments = [f"evidence/{subject}/{next(self.serial)}.pdf"] if with_evidence else []
            permitted = self.expected_denial(actor, step.kind, subject, step.event, payload) is None
            cmd = self.command(
                step.kind,
                subject,
                step.event,
                payload,
                actor,
                reason=REASON,
                attachments=attachments,
            )
            plan = self.preview(cmd)
            if plan is None and tries_left:
                continue
            if sabotage is not None:
                self.sabotage = sabotage
                try:
                    expect = SABOTAGE[sabotage] if plan is not None else None
                    self.attempt(cmd, expect=expect, permitted=permitted)
                finally:
                    self.sabotage = None
                return
            events = self.attempt(cmd, permitted=permitted)
            if plan is None:  # nothing to be done today: a day passes
                self.clock.advance(days=1)
            if plan is not None:
                assert events is not None, "preview accepted what execute refused"
                assert (events[0].from_state, events[0].to_state) == (
                    plan.from_state,
                    plan.to_state,
                )
            return

    def preview(self, cmd: dict[str, Any]) -> Plan | None:
        """What the engine would decide; None if it would refuse. Changes nothing."""
        before, log_before = frozen(self.state), self.log_view()
        plan: Plan | None = None
        with contextlib.suppress(XunchaError):
            plan = self.engine.preview(cmd)
        assert frozen(self.state) == before, "a preview changed the state"
        assert self.log_view() == log_before, "a preview changed the log"
        return plan

    def wrong_actor(self) -> None:
        """Fire a possible step as an actor who may not: exactly the right refusal."""
        picked = self.pick_step(forward=False)
        if picked is None:
            return
        step, subject, payload = picked
        wrong = [
            (actor, denial)
            for actor in self.actor_pool()
            if (denial := self.expected_denial(actor, step.kind, subject, step.event, payload))
        ]
        if not wrong:
            return
        insiders = [w for w in wrong if w[1] is SeparationOfDuties]
        actor, denial = self.choose.choice(
            insiders if insiders and self.choose.integer(0, 1) == 0 else wrong
        )
        attachments = [f"evidence/{subject}/x.pdf"]
        cmd = self.command(
            step.kind, subject, step.event, payload, actor, reason=REASON, attachments=attachments
        )
        self.attempt(cmd, expect=denial)

    def random_command(self) -> None:
        """Anything: any event of any kind, on any subject, by anyone, with a valid,
        empty or broken payload. Only a refusal that changes something is wrong."""
        c, s = self.choose, self.state
        kind = c.choice(sorted(self.defs))
        existing = {
            "round": [ROUND],
            "unit": sorted(s.units),
            "item": sorted(s.items),
            "measure": sorted(s.measures),
            "lead": sorted(s.leads),
            "deadline": sorted(s.deadlines),
            "recommendation": sorted(s.recommendations),
        }.get(kind, [])
        subject = c.choice([*existing, self.new_id(kind) if kind != "round" else OTHER_ROUND])
        event = c.choice([*(e.name for e in self.defs[kind].events), "explode"])
        actor = c.choice(self.actor_pool())
        valid = self.payload(kind, subject, event, None)
        payload = c.choice(
            [
                valid,
                valid,
                {},
                {**valid, "unexpected": 1},
                dict(list(valid.items())[1:]),
                {"unit_id": 5, "item_id": None},
                {"delivered_on": "2026-13-45", "done_on": "yesterday"},
                {"score": "101", "grade": "excellent"},
                {"children": [{"id": next(iter(s.items), "P-1"), "description": "x"}] * 2},
                {"percent": 150},
                {"milestones": []},
                {"lookback_round_id": ROUND},
                {
                    "item_ids": ["P-404"],
                    "receiver": "other",
                    "receiver_org": "fd-1",
                    "summary": "s",
                    "transferred_on": iso(self.today()),
                },
                {"reported_on": iso(self.today() + timedelta(days=3))},
                {"delivered_on": iso(self.today() + timedelta(days=3))},
                {"reported_on": "2000-01-01"},
            ]
        )
        reason = c.choice([None, "", "   ", REASON])
        attachments = c.choice([(), ("evidence/x.pdf",), ("",)])
        round_id = ROUND
        if not (kind == "round" and event == "open") and c.integer(0, 9) == 0:
            round_id = OTHER_ROUND
        self.attempt(
            self.command(
                kind,
                subject,
                event,
                payload,
                actor,
                reason=reason,
                attachments=attachments,
                round_id=round_id,
            )
        )

    def sweep(self, sabotage: str | None = None) -> None:
        """Record what is due now (ladder rungs, missing reports): automatic events
        only, by the sweeper, appended as one unit of work, or nothing at all."""
        before, log_before, version = frozen(self.state), self.log_view(), self.state.version
        self.sabotage = sabotage
        try:
            report = self.engine.sweep()
        except XunchaError as exc:  # a hook failed, or a working day past the calendar's data
            refused = exc
        else:
            refused = None
        finally:
            self.sabotage = None
        if refused is not None:
            self.say(f"sweep -> refused: {type(refused).__name__}: {refused}")
            assert frozen(self.state) == before, "a failed sweep changed the state"
            assert self.log_view() == log_before, "a failed sweep changed the log"
            return
        self.say(f"sweep -> {', '.join(e.type for e in report.events) or 'nothing due'}")
        assert all(e.automatic for e in report.events)
        assert [e.version for e in report.events] == list(
            range(version + 1, version + 1 + len(report.events))
        )
        COVERAGE.update(e.type for e in report.events)

    def resend(self) -> None:
        """A command sent again is applied once; its id reused for another command
        (another subject, reason, payload or actor) is refused."""
        cmd, events = self.choose.choice(self.accepted)
        before, log_before = frozen(self.state), self.log_view()
        assert self.engine.execute(cmd) == events
        assert frozen(self.state) == before
        assert self.log_view() == log_before
        other = self.choose.choice(
            [
                {"subject": cmd["subject"] + "-x"},
                {"reason": (cmd["reason"] or "") + "另"},
                {"payload": {**cmd["payload"], "unexpected": 1}},
                {"actor": self.cast.leading_group},
                {"actor": self.cast.office},
            ]
        )
        if {**cmd, **other} != cmd:
            self.attempt({**cmd, **other}, expect=InvalidCommand)

    # -- invariants ----------------------------------------------------------------------
    def check(self) -> None:
        self.check_log()
        self.check_closed_items()
        self.check_rectified_units()
        self.check_parents()
        self.check_figures()
        self.check_leads()
        self.check_round_stage()

    def check_log(self) -> None:
        """Each new event checked once, in order, then folded into ``shadow``: the
        fold of the whole log, which must equal the live state."""
        events = list(self.log.read(ROUND))
        known = len(self.hashes)
        assert [e.hash for e in events[:known]] == self.hashes, "the log's history changed"
        for event in events[known:]:
            self.check_event(event)
            apply_event(self.shadow, event, self.defs)
            self.hashes.append(event.hash)
        state = self.state
        assert len(events) == state.version
        assert state.head == (events[-1].hash if events else genesis_hash(ROUND))
        assert self.shadow == state, "replaying the log does not give the live state"

    def check_event(self, e: Event) -> None:
        """One event, against the state just before it (``shadow``)."""
        before = self.shadow
        assert e.stream == ROUND
        assert e.version == len(self.hashes) + 1, f"{e.id}: versions are not consecutive"
        assert e.prev_hash == (self.hashes[-1] if self.hashes else genesis_hash(ROUND))
        assert e.computed_hash() == e.hash, f"{e.id} does not match its hash"
        d = self.defs[e.kind]
        assert e.definition == d.version_id
        name = d.event_by_value(e.event).name
        spec = None
        if e.from_state is None:
            assert name == d.data.create.event
            roles = d.data.create.roles
        else:
            src, dst = d.state_by_value(e.from_state), d.state_by_value(e.to_state)
            taken = [t for t in d.candidates(name, src.name) if (t.dest or src.name) == dst.name]
            assert taken, f"{e.type} from {src.name} to {dst.name} is no transition"
            spec = taken[0]
            roles = spec.roles
            assert spec.automatic == e.automatic, f"{e.type}: automatic={e.automatic}"
            assert dst.rank >= src.rank or spec.backward, f"{e.type} moved back unmarked"
            if spec.backward:
                assert name in EXPLICIT_BACKWARD, f"{e.type} is a backward step"
            if spec.reason_required:
                assert (e.reason or "").strip(), f"{e.type} without a reason"
        assert e.actor.role in roles, f"{e.actor} ({e.actor.role.value}) fired {e.type}"
        self.check_authority(before, e, spec)
        if e.type == "unit.report_rectification":
            still_open = [
                i.id
                for i in before.leaves(e.subject)
                if i.state not in DONE and not (i.state == "long_term" and i.milestones)
            ]
            assert not still_open, f"unit {e.subject} reported rectified with {still_open} open"
        if e.type == "item.close":
            item = before.items[e.subject]
            self.check_verified(item, before.units[item.unit_id])
        if e.type == "lead.reconcile":
            self.reconciled[e.subject] += 1
            assert self.reconciled[e.subject] == 1, f"lead {e.subject} reconciled twice"

    def check_authority(self, before: RoundState, e: Event, spec: Any) -> None:
        actor = e.actor
        unit = self.unit_for(before, e.kind, e.subject, e.payload)
        if e.kind in ("item", "measure") or (e.kind == "unit" and e.from_state is not None):
            assert unit is not None
        if unit is not None:
            if actor.role is Role.INSPECTED_ORGANIZATION:
                assert same_organization(actor.organization, unit.organization_id), (
                    f"{actor} acted for {unit.id}"
                )
            if actor.role is Role.INSPECTION_TEAM and unit.team_id:
                assert same_organization(actor.organization, unit.team_id), (
                    f"{actor} acted for {unit.id}"
                )
            if spec is not None and spec.independent:
                assert not same_organization(actor.organization, unit.organization_id), (
                    f"{actor} checked own work"
                )
        lead = before.leads.get(e.subject) if e.kind == "lead" else None
        if lead is not None and actor.role in RECEIVER_ROLE.values():
            assert actor.role is RECEIVER_ROLE[lead.receiver]
            assert same_organization(actor.organization, lead.receiver_org)
        if not e.automatic:  # what a command asked for, not what the engine derived
            assert actor != SWEEPER, f"{e.type} fired in the engine's name"
            independent = spec is not None and spec.independent
            assert not self.judges_own_work(
                before, actor, e.kind, e.subject, e.payload, independent
            ), f"{actor} ({actor.role.value}) judged its own work: {e.type} {e.subject}"

    def check_verified(self, item: Item, unit: Unit) -> None:
        sub, ver = item.submission, item.verification
        assert sub is not None, f"{item.id} closed without a submission"
        assert sub.evidence, f"{item.id} closed without evidence"
        assert same_organization(sub.by.organization, unit.organization_id)
        assert ver is not None, f"{item.id} closed unverified"
        assert ver.by.role in self.verifiers, f"{item.id} verified by {ver.by.role.value}"
        assert not same_organization(ver.by.organization, unit.organization_id), (
            f"{item.id} verified by its unit"
        )
        assert ver.at >= sub.at

    def check_closed_items(self) -> None:
        s = self.state
        for item in s.items.values():
            assert (item.closed_at is not None) == (item.state == "closed"), item.id
            if item.state == "closed" and not item.children:
                self.check_verified(item, s.units[item.unit_id])

    def check_rectified_units(self) -> None:
        """A unit that reported its rectification has no open leaf item: each is
        closed, withdrawn, or a long-term item (with milestones) still on its way to
        closing. Reopening an item moves the unit back to rectifying."""
        s = self.state
        for unit in s.units.values():
            if unit.state not in REPORTED:
                continue
            for item in s.leaves(unit.id):
                assert item.state in DONE or (
                    item.long_term and item.milestones and item.state in LONG_TERM_LIVE
                ), f"unit {unit.id} is {unit.state} but item {item.id} is {item.state}"

    def check_parents(self) -> None:
        s = self.state
        for item in s.items.values():
            if not item.children:
                continue
            kids = [s.items[c] for c in item.children]
            assert all(k.parent_id == item.id and k.unit_id == item.unit_id for k in kids)
            assert item.state in ("refined", "closed", "withdrawn"), (item.id, item.state)
            all_done = all(k.state in DONE for k in kids)
            assert (item.state in DONE) == all_done, f"parent {item.id} is {item.state}"
            some_closed = any(k.state == "closed" for k in kids)
            assert (item.state == "closed") == (all_done and some_closed), item.id

    def check_figures(self) -> None:
        s = self.state
        figures = outcome_figures(s)
        groups: list[tuple[Any, list[Item]]] = [(figures, list(s.leaves()))]
        groups += [(u, list(s.leaves(u.unit_id))) for u in figures.units]
        for fig, leaves in groups:
            closed = sum(1 for i in leaves if i.state == "closed")
            withdrawn = sum(1 for i in leaves if i.state == "withdrawn")
            total = len(leaves) - withdrawn
            assert (fig.items, fig.closed, fig.withdrawn) == (len(leaves), closed, withdrawn)
            if total == 0:
                assert fig.completion_rate is None
            else:
                assert fig.completion_rate == closed / total
                assert 0 <= fig.completion_rate <= 1
        assert sum(u.items for u in figures.units) == figures.items

    def check_leads(self) -> None:
        for lead in self.state.leads.values():
            reconciled = lead.state == "reconciled"
            assert (lead.reconciled_at is not None) == reconciled, lead.id
            assert self.reconciled[lead.id] == int(reconciled), lead.id

    def check_round_stage(self) -> None:
        """The round's stage is never ahead of a unit's track."""
        s = self.state
        assert s.round is not None
        need = ROUND_NEEDS.get(s.round.state)
        if need is None:
            return
        rank = self.defs["unit"].state(need).rank
        for unit in s.units.values():
            unit_rank = self.defs["unit"].state_by_value(unit.state).rank
            assert unit_rank >= rank, f"round is {s.round.state} but {unit.id} is {unit.state}"

    def check_replay(self) -> None:
        """From scratch: replay, a fresh engine over the same log, the hash chain."""
        live = self.state
        replayed = self.engine.replay(ROUND)
        assert replayed == live
        assert snapshot(replayed).model_dump() == snapshot(live).model_dump()
        fresh = Engine(
            clock=ManualClock(self.clock.now()), log=self.log, processes=PROCESSES.values()
        )
        assert fresh.state(ROUND) == live
        report = self.log.verify()
        assert report.ok
        assert report.events == live.version


def _quiet(_: str) -> None:
    return None


# -- the state machine -----------------------------------------------------------------
unit_specs = st.lists(
    st.tuples(st.sampled_from([*TEAMS, None]), st.sampled_from([None, 0, 7])),
    min_size=1,
    max_size=MAX_UNITS,
)


class RoundMachine(RuleBasedStateMachine):
    """Random commands by random actors on one small round; invariants after each."""

    scenario: Scenario

    @initialize(policy=st.sampled_from(sorted(PROCESSES)), units=unit_specs, data=st.data())
    def open_round(
        self, policy: str, units: list[tuple[str | None, int | None]], data: st.DataObject
    ) -> None:
        self.scenario = Scenario(policy, units, Drawn(data))

    def _use(self, data: st.DataObject) -> Scenario:
        self.scenario.choose = Drawn(data)
        return self.scenario

    @rule(data=st.data(), sabotage=st.sampled_from([None, None, None, "before", "after"]))
    def push(self, data: st.DataObject, sabotage: str | None) -> None:
        self._use(data).push(sabotage)

    @rule(data=st.data(), n=st.integers(2, 12))
    def push_many(self, data: st.DataObject, n: int) -> None:
        sc = self._use(data)
        for _ in range(n):
            sc.push()
            sc.check()

    @rule(data=st.data())
    def wrong_actor(self, data: st.DataObject) -> None:
        self._use(data).wrong_actor()

    @rule(data=st.data())
    def random_command(self, data: st.DataObject) -> None:
        self._use(data).random_command()

    @rule(days=st.integers(0, 12), hours=st.integers(0, 12))
    def advance_clock(self, days: int, hours: int) -> None:
        self.scenario.clock.advance(days=days, hours=hours)

    @rule(sabotage=st.sampled_from([None, None, "after"]))
    def sweep(self, sabotage: str | None) -> None:
        self.scenario.sweep(sabotage)

    @precondition(lambda self: bool(self.scenario.accepted))
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        self._use(data).resend()

    # one invariant per property of issue 2, item 10 (events_are_sound holds several
    # per-event ones: chain, replay, roles, backward moves, reasons, reconciliation)
    @invariant()
    def events_are_sound(self) -> None:
        self.scenario.check_log()

    @invariant()
    def closed_items_were_verified_independently(self) -> None:
        self.scenario.check_closed_items()

    @invariant()
    def no_unit_reported_rectified_with_open_items(self) -> None:
        self.scenario.check_rectified_units()

    @invariant()
    def parents_close_with_their_children(self) -> None:
        self.scenario.check_parents()

    @invariant()
    def completion_rate_is_closed_over_total(self) -> None:
        self.scenario.check_figures()

    @invariant()
    def leads_reconciled_at_most_once(self) -> None:
        self.scenario.check_leads()

    @invariant()
    def round_never_ahead_of_its_units(self) -> None:
        self.scenario.check_round_stage()

    def teardown(self) -> None:
        if hasattr(self, "scenario"):
            self.scenario.check_replay()


TestRoundMachine = RoundMachine.TestCase


# -- targeted properties ----------------------------------------------------------------
TARGETED = settings(max_examples=max(20, settings.default.max_examples // 5))
"""The stateful test takes the profile's examples (1,000 in CI); these a fifth."""


def _scenario(data: st.DataObject, pushes: int) -> Scenario:
    sc = Scenario(
        data.draw(st.sampled_from(sorted(PROCESSES)), label="policy"),
        data.draw(unit_specs, label="units"),
        Drawn(data),
    )
    for n in range(pushes):
        sc.push()
        if n % 7 == 6:
            sc.clock.advance(days=sc.choose.integer(0, 20))
    return sc


@TARGETED
@given(data=st.data(), pushes=st.integers(0, 60))
def test_replay_from_a_fresh_engine_equals_the_live_state(data: st.DataObject, pushes: int) -> None:
    sc = _scenario(data, pushes)
    live = sc.state
    fresh = Engine(clock=ManualClock(sc.clock.now()), log=sc.log, processes=PROCESSES.values())
    assert fresh.state(ROUND) == live
    assert replay(ROUND, sc.log.read(ROUND), PROCESSES.values()) == live
    assert snapshot(fresh.state(ROUND)) == snapshot(live)
    assert outcome_figures(fresh.state(ROUND)) == outcome_figures(live)
    # the engine reloads a forgotten round from its log
    sc.engine.forget(ROUND)
    assert sc.engine.state(ROUND) == live


class ListLog(EventLog):
    """A log that stores whatever it is given: for tampering with a copy."""

    def __init__(self, stream: str, events: Sequence[Event]) -> None:
        self.stream, self.events = stream, list(events)

    def append(self, stream: str, expected_version: int, events: Sequence[Event]) -> None:
        raise AssertionError("read-only")

    def read(self, stream: str, after: int = 0) -> Iterator[Event]:
        return iter(self.events[after:] if stream == self.stream else [])

    def streams(self) -> list[str]:
        return [self.stream]

    def version(self, stream: str) -> int:
        return len(self.events) if stream == self.stream else 0


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(st.characters(codec="utf-8"), max_size=8),
)


@TARGETED
@given(data=st.data(), pushes=st.integers(2, 30))
def test_tampering_with_one_payload_is_named_by_verify(data: st.DataObject, pushes: int) -> None:
    sc = _scenario(data, pushes)
    events = list(sc.log.read(ROUND))
    k = data.draw(st.integers(1, len(events)), label="tampered version")
    original = events[k - 1]
    key = data.draw(st.sampled_from([*sorted(original.payload), "injected"]), label="key")
    value = data.draw(json_scalars.filter(lambda v: original.payload.get(key, ...) != v))
    tampered = original.model_copy(update={"payload": {**original.payload, key: value}})
    forged = [*events[: k - 1], tampered, *events[k:]]

    with pytest.raises(LogCorrupted):  # an append checks contents too
        InMemoryEventLog().append(ROUND, 0, forged)
    copy = ListLog(ROUND, forged)  # a store that was written to behind the log's back
    report = copy.verify()
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad.bad_version == k
    assert report.first_bad.bad_event_id == original.id
    with pytest.raises(LogCorrupted) as raised:
        replay(ROUND, copy.read(ROUND), PROCESSES.values())
    assert raised.value.version == k
    with pytest.raises(LogCorrupted):
        Engine(clock=ManualClock(sc.clock.now()), log=copy, processes=PROCESSES.values()).state(
            ROUND
        )


@TARGETED
@given(data=st.data(), pushes=st.integers(2, 30))
def test_any_other_tampering_is_named_by_verify(data: st.DataObject, pushes: int) -> None:
    sc = _scenario(data, pushes)
    events = list(sc.log.read(ROUND))
    n = len(events)
    how = data.draw(st.sampled_from(["field", "resealed", "deleted", "swapped"]), label="how")
    if how in ("resealed", "deleted", "swapped"):
        k = data.draw(st.integers(1, n - 1), label="version")  # not the last one
    else:
        k = data.draw(st.integers(1, n), label="version")
    e = events[k - 1]
    forged = list(events)
    expected = k
    if how in ("field", "resealed"):
        field = data.draw(st.sampled_from(["reason", "actor", "to_state", "attachments"]))
        change: dict[str, Any] = {
            "reason": {"reason": (e.reason or "") + "改"},
            "actor": {
                "actor": Actor(id="intruder", role=Role.SUPERVISION_OFFICE, organization="x")
            },
            "to_state": {"to_state": e.to_state + "_x"},
            "attachments": {"attachments": (*e.attachments, "evidence/forged.pdf")},
        }[field]
        forged[k - 1] = e.model_copy(update=change)
        if how == "resealed":
            forged[k - 1] = forged[k - 1].model_copy(update={"hash": forged[k - 1].computed_hash()})
            expected = k + 1  # its own hash fits; the next event's link does not
    elif how == "deleted":
        del forged[k - 1]
    else:
        forged[k - 1], forged[k] = forged[k], forged[k - 1]
    report = ListLog(ROUND, forged).verify()
    assert report.first_bad is not None
    assert report.first_bad.bad_version == expected
    with pytest.raises(LogCorrupted):
        replay(ROUND, forged, PROCESSES.values())


@pytest.mark.parametrize("seed", range(4))
def test_pushing_forward_takes_a_round_through_every_stage(seed: int) -> None:
    """The push rule is what gets random rounds deep into the process: driven by it
    alone, a round reaches archiving and on the way every stage, with the invariants
    checked after each command."""
    policy = sorted(PROCESSES)[seed % len(PROCESSES)]
    sc = Scenario(policy, [("team-1", 0), ("team-2", None)], Seeded(seed))
    rounds_seen = {"prepare"}
    for n in range(3000):
        sc.push()
        sc.check()
        if n % 10 == 9:
            sc.clock.advance(days=2)
        assert sc.state.round is not None
        rounds_seen.add(sc.state.round.state)
        if sc.state.round.state == "archived":
            break
    sc.check_replay()
    assert rounds_seen == {s.stored for s in sc.defs["round"].states}
    assert sc.outcomes["accepted"] > 0
