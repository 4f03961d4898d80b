"""Deadlines at work: which events open, meet or cancel them, and what a sweep fires.

Everything here is a pure function of a round's state, an event or a time, and the
:class:`~xuncha_flow.DeadlinePolicy`; it returns follow-ups (automatic events) for
the engine to record. Nothing here reads a clock.

* :func:`deadline_follow_ups` — after an event: open deadlines the event anchors,
  meet or cancel those it satisfies; closing or withdrawing an item cancels the
  deadlines of the item and its measures (its ladder stops); an escalation past a
  warning raises a recommendation for the leading group to decide.
* :func:`due_rungs` — for a sweep at a time: the rungs of a deadline that are due
  and have not fired (each rung fires at most once per deadline).
* :func:`daily_checks` / :func:`weekly_checks` — missing daily reports of units in
  concentrated rectification and missing weekly bulletins (日报告、周通报).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from ._calendar import WorkingDayCalendar
from ._deadlines import Calendars, DeadlinePolicy, DeadlineRule, Rung, due_instant, rung_time
from ._errors import RuleViolation
from ._events import Event
from ._model import Deadline, RoundState

__all__ = [
    "FollowUp",
    "daily_checks",
    "deadline_follow_ups",
    "due_rungs",
    "next_time",
    "window_violations",
]

FollowUp = tuple[str, str, str, dict[str, Any]]
"""(subject kind, subject id, event identifier, payload) of an automatic event."""

ITEM_DONE = ("closed", "withdrawn")
LIVE_MEASURE = ("planned", "in_progress")


def deadline_ids(state: RoundState, rule: str, subject: str) -> list[str]:
    """Ids of every deadline of ``rule`` on ``subject``, oldest first."""
    base = f"{rule}:{subject}"
    ids: list[str] = []
    n = 1
    while True:
        candidate = base if n == 1 else f"{base}#{n}"
        if candidate not in state.deadlines:
            return ids
        ids.append(candidate)
        n += 1


def running(state: RoundState, rule: str, subject: str) -> Deadline | None:
    """The deadline of ``rule`` on ``subject`` that is running or paused, if any."""
    for deadline_id in reversed(deadline_ids(state, rule, subject)):
        deadline = state.deadlines[deadline_id]
        if deadline.state in ("running", "paused"):
            return deadline
    return None


def _next_id(state: RoundState, rule: str, subject: str) -> str:
    n = len(deadline_ids(state, rule, subject)) + 1
    return f"{rule}:{subject}" if n == 1 else f"{rule}:{subject}#{n}"


def _subjects(state: RoundState, event: Event, rule: DeadlineRule) -> list[str]:
    """The subjects of kind ``rule.subject`` an anchor event reaches."""
    if event.kind == rule.subject:
        return [event.subject]
    if event.kind == "unit" and rule.subject == "item":
        return [i.id for i in state.leaves(event.subject)]
    if event.kind == "unit" and rule.subject == "measure":
        return [
            m
            for item in state.leaves(event.subject)
            for m in item.measure_ids
            if state.measures[m].state in LIVE_MEASURE
        ]
    return []


def _unit_id(state: RoundState, kind: str, subject: str) -> str | None:
    if kind == "unit":
        return subject
    if kind == "item":
        return state.items[subject].unit_id
    if kind == "measure":
        return state.items[state.measures[subject].item_id].unit_id
    return None


def _start_date(event: Event, rule: DeadlineRule, policy: DeadlinePolicy) -> date:
    if rule.start.startswith("payload:"):
        return date.fromisoformat(str(event.payload[rule.start.partition(":")[2]]))
    return event.timestamp.astimezone(policy.tz).date()


def _due_date(
    state: RoundState, rule: DeadlineRule, subject: str, start: date, calendars: Calendars
) -> date | None:
    if rule.duration is not None:
        return calendars.add(start, rule.duration)
    if rule.due_field == "measure.due_date":
        return state.measures[subject].due_date
    if rule.due_field == "unit.onsite_end":
        unit_id = _unit_id(state, rule.subject, subject)
        return state.units[unit_id].onsite_end if unit_id is not None else None
    return None  # pragma: no cover - the rule's validator requires one of the two


def _conditions_hold(state: RoundState, rule: DeadlineRule, subject: str) -> bool:
    for condition in rule.when:
        if condition == "plan_approved":
            unit_id = _unit_id(state, rule.subject, subject)
            if unit_id is None or state.units[unit_id].plan_approved_at is None:
                return False
    return True


def _open(
    state: RoundState,
    event: Event,
    rule: DeadlineRule,
    subject: str,
    policy: DeadlinePolicy,
    calendars: Calendars,
) -> FollowUp | None:
    if running(state, rule.name, subject) is not None or not _conditions_hold(state, rule, subject):
        return None
    if rule.subject == "measure" and state.measures[subject].state not in LIVE_MEASURE:
        return None  # a proposal awaiting review has no deadline until it is approved
    start = _start_date(event, rule, policy)
    due = _due_date(state, rule, subject, start, calendars)
    if due is None:
        return None
    start_at = datetime.combine(start, time(0), policy.tz)
    earliest = None
    if rule.earliest is not None:
        earliest = datetime.combine(calendars.add(start, rule.earliest), time(0), policy.tz)
    payload: dict[str, Any] = {
        "rule": rule.name,
        "subject_kind": rule.subject,
        "subject": subject,
        "ladder": rule.ladder,
        "start_at": start_at.isoformat(),
        "due": due.isoformat(),
        "due_at": due_instant(due, policy.tz).isoformat(),
        "earliest_at": earliest.isoformat() if earliest else None,
    }
    return ("deadline", _next_id(state, rule.name, subject), "open", payload)


def _recommendation_id(deadline: str, rung: str, generation: int) -> str:
    base = f"{deadline}@{rung}"
    return base if generation == 1 else f"{base}#{generation}"


def deadline_follow_ups(
    state: RoundState, event: Event, policy: DeadlinePolicy, calendars: Calendars
) -> list[FollowUp]:
    """Deadlines ``event`` meets, cancels, opens; recommendations it raises."""
    out: list[FollowUp] = []
    kind, subject, etype = event.kind, event.subject, event.type
    if kind == "deadline":
        if event.event == "escalate" and event.payload.get("kind") == "recommendation":
            deadline = state.deadlines[subject]
            rung = str(event.payload["rung"])
            out.append(
                (
                    "recommendation",
                    _recommendation_id(subject, rung, deadline.generation),
                    "recommend",
                    {
                        "deadline": subject,
                        "rung": rung,
                        "recommends": event.payload.get("recommends"),
                        "subject_kind": deadline.subject_kind,
                        "subject": deadline.subject,
                    },
                )
            )
        return out
    if kind == "recommendation":
        return out
    for rule in policy.rules:
        if rule.subject != kind:
            continue
        current = running(state, rule.name, subject)
        if current is None:
            continue
        if etype in rule.met_by:
            out.append(("deadline", current.id, "meet", {}))
        elif etype in rule.cancelled_by:
            out.append(("deadline", current.id, "cancel", {}))
    if kind == "item" and event.to_state in ITEM_DONE:
        item = state.items[subject]
        for rule in policy.rules:
            targets = (
                [subject]
                if rule.subject == "item"
                else list(item.measure_ids)
                if rule.subject == "measure"
                else []
            )
            for target in targets:
                current = running(state, rule.name, target)
                if current is not None and etype not in rule.met_by:
                    out.append(("deadline", current.id, "cancel", {}))
    for rule in policy.anchored_on(etype):
        for target in _subjects(state, event, rule):
            follow = _open(state, event, rule, target, policy, calendars)
            if follow is not None:
                out.append(follow)
    return out


def window_violations(
    state: RoundState, policy: DeadlinePolicy, kind: str, subject: str, etype: str, now: datetime
) -> list[RuleViolation]:
    """Refuse an event that meets a deadline whose window has not opened yet."""
    found = []
    for rule in policy.rules:
        if rule.subject != kind or rule.earliest is None or etype not in rule.met_by:
            continue
        current = running(state, rule.name, subject)
        if current is not None and current.earliest_at is not None and now < current.earliest_at:
            found.append(
                RuleViolation(
                    "deadline_window",
                    f"{rule.label} ({rule.name}) opens on {current.earliest_at.date()}",
                    (current.id,),
                )
            )
    return found


# -- sweeps ------------------------------------------------------------------------------
def _rungs(policy: DeadlinePolicy, deadline: Deadline) -> tuple[Rung, ...]:
    return policy.ladder(deadline.ladder).rungs if deadline.ladder else ()


def next_time(policy: DeadlinePolicy, deadline: Deadline) -> datetime | None:
    """When the deadline's next unfired rung is due (None when nothing is left)."""
    if deadline.state != "running":
        return None
    times = [
        rung_time(r, deadline.start_at, deadline.due_at)
        for r in _rungs(policy, deadline)
        if not deadline.has_fired(r.name)
    ]
    return min(times) if times else None


def _recipients(state: RoundState, deadline: Deadline, rung: Rung) -> list[dict[str, str]]:
    kind, subject = deadline.subject_kind, deadline.subject
    unit_id = _unit_id(state, kind, subject)
    unit = state.units.get(unit_id) if unit_id is not None else None
    measure = state.measures.get(subject) if kind == "measure" else None
    lead = state.leads.get(subject) if kind == "lead" else None
    values: dict[str, str | None] = {
        "responsible_person": measure.responsible_person if measure else None,
        "responsible_leader": measure.responsible_leader if measure else None,
        "leader_in_charge": unit.leader_in_charge if unit else None,
        "unit": unit.organization_id if unit else None,
        "unit_head": unit.head if unit else None,
        "lead_receiver": lead.receiver_org if lead else None,
        "inspection_office": "inspection_office",
        "supervision_office": "supervision_office",
        "leading_group": "leading_group",
    }
    return [{"as": r, "id": v} for r in rung.recipients if (v := values.get(r))]


def _check(state: RoundState, deadline: Deadline, check: str) -> tuple[bool, str]:
    if check == "half_items_closed":
        unit_id = _unit_id(state, deadline.subject_kind, deadline.subject)
        leaves = list(state.leaves(unit_id)) if unit_id is not None else []
        scope = [i for i in leaves if i.state != "withdrawn"]
        closed = sum(1 for i in scope if i.state == "closed")
        return 2 * closed >= len(scope), f"{closed} of {len(scope)} items closed"
    raise ValueError(f"unknown check {check!r}")


def due_rungs(
    state: RoundState, policy: DeadlinePolicy, deadline: Deadline, at: datetime
) -> list[FollowUp]:
    """The escalations a sweep at ``at`` records for ``deadline``, in ladder order."""
    if deadline.state != "running":
        return []
    out: list[FollowUp] = []
    for rung in _rungs(policy, deadline):
        when = rung_time(rung, deadline.start_at, deadline.due_at)
        if deadline.has_fired(rung.name) or when > at:
            continue
        payload: dict[str, Any] = {
            "rung": rung.name,
            "kind": rung.kind,
            "label": rung.label,
            "generation": deadline.generation,
            "outcome": "fired",
            "fire_at": when.isoformat(),
            "due": deadline.due.isoformat(),
            "recipients": _recipients(state, deadline, rung),
        }
        if rung.check is not None:
            holds, detail = _check(state, deadline, rung.check)
            payload["outcome"] = "passed" if holds else "fired"
            payload["detail"] = detail
        if rung.recommends:
            payload["recommends"] = rung.recommends
        if rung.final_days:
            payload["final_date"] = (deadline.due + timedelta(days=rung.final_days)).isoformat()
        out.append(("deadline", deadline.id, "escalate", payload))
    return out


def daily_checks(
    state: RoundState, unit_id: str, at: datetime, policy: DeadlinePolicy, calendars: Calendars
) -> list[FollowUp]:
    """A ``report_missing`` for each past working day of concentrated rectification
    without a daily report (日报告). Needs the working-day calendar."""
    unit = state.units[unit_id]
    if not policy.daily_report or unit.state != "rectifying" or unit.rectifying_since is None:
        return []
    workdays = calendars.get("working_days")
    assert isinstance(workdays, WorkingDayCalendar)
    day = unit.rectifying_since.astimezone(policy.tz).date()
    last = at.astimezone(policy.tz).date() - timedelta(days=1)
    seen = set(unit.daily_reports) | set(unit.missing_reports)
    out: list[FollowUp] = []
    while day <= last:
        if workdays.is_working_day(day) and day not in seen:
            out.append(("unit", unit_id, "report_missing", {"day": day.isoformat()}))
        day += timedelta(days=1)
    return out


def weekly_checks(state: RoundState, at: datetime, policy: DeadlinePolicy) -> list[FollowUp]:
    """A ``bulletin_missing`` for each complete week of the rectification stage
    without a weekly bulletin (周通报)."""
    rnd = state.round
    if rnd is None or not policy.weekly_bulletin or rnd.state != "rectify":
        return []
    if rnd.rectify_since is None:
        return []
    since = rnd.rectify_since.astimezone(policy.tz).date()
    monday = since - timedelta(days=since.weekday())
    today = at.astimezone(policy.tz).date()
    seen = set(rnd.bulletins) | set(rnd.missing_bulletins)
    out: list[FollowUp] = []
    while monday + timedelta(days=7) <= today:
        if monday not in seen:
            out.append(("round", rnd.id, "bulletin_missing", {"week_of": monday.isoformat()}))
        monday += timedelta(days=7)
    return out


class DueIndex:
    """The next rung time of each running deadline of one round, in a heap with lazy
    invalidation, so the round's earliest one is found in O(log n) after a command
    touched a few deadlines, whatever the number of deadlines."""

    def __init__(self, state: RoundState, policy: DeadlinePolicy) -> None:
        self._policy = policy
        self._next: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        for deadline in state.deadlines.values():
            self.update(deadline)

    def update(self, deadline: Deadline) -> None:
        """Note the deadline's next rung time (after a change to it)."""
        when = next_time(self._policy, deadline)
        if when is None:
            self._next.pop(deadline.id, None)
        elif self._next.get(deadline.id) != when:
            self._next[deadline.id] = when
            heapq.heappush(self._heap, (when, deadline.id))

    def earliest(self, skip: frozenset[str] = frozenset()) -> datetime | None:
        """The earliest next rung time of the deadlines not in ``skip``."""
        held: list[tuple[datetime, str]] = []
        found = None
        heap = self._heap
        while heap:
            when, ident = heap[0]
            if self._next.get(ident) != when:
                heapq.heappop(heap)  # stale: the deadline moved on or ended
            elif ident in skip:
                held.append(heapq.heappop(heap))
            else:
                found = when
                break
        for entry in held:
            heapq.heappush(heap, entry)
        return found


def round_next_due(
    state: RoundState,
    policy: DeadlinePolicy,
    now: datetime,
    index: DueIndex | None = None,
    touched: Iterable[str] = (),
) -> datetime | None:
    """When the round next has something for a sweep: its earliest unfired rung, or
    the next midnight while daily reports or weekly bulletins are checked. With an
    ``index`` that predates a command, ``touched`` names the deadlines the command
    changed (their times are taken from the state, the others' from the index)."""
    if index is None:
        index = DueIndex(state, policy)
        touched = ()
    changed = frozenset(touched)
    times = [t for d in changed if (t := next_time(policy, state.deadlines[d])) is not None]
    rest = index.earliest(changed)
    if rest is not None:
        times.append(rest)
    rnd = state.round
    checking = (
        policy.daily_report and any(u.state == "rectifying" for u in state.units.values())
    ) or (policy.weekly_bulletin and rnd is not None and rnd.state == "rectify")
    if checking:
        times.append(next_check(now, policy))
    return min(times) if times else None


def next_check(at: datetime, policy: DeadlinePolicy) -> datetime:
    """The next midnight after ``at``: daily and weekly checks run then."""
    day = at.astimezone(policy.tz).date() + timedelta(days=1)
    return datetime.combine(day, time(0), policy.tz)
