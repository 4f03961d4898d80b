"""Property tests of deadlines and sweeps with the test clock (issue 3, item 8).

Each example starts a fresh engine from a round fed back on 11 May 2026 under the
supervision preset (daily reports and weekly bulletins checked) with a ladder drawn
from the three presets, gives its five items measures with drawn due dates, and then:

* runs drawn sequences of clock advances and sweeps at drawn times (any time up to
  the clock, in any order), each sweep possibly split by ``select`` into drawn
  parts swept in a drawn order: no rung fires twice, and the end result is what one
  sweep at the end gives on a twin engine, and what the ladders say should have fired;
* closes, withdraws and drops while sweeping: no rung for a closed or withdrawn
  item's deadlines, nor for a dropped measure's, once that happened;
* after its due time, every open deadline has its overdue rung after the next sweep,
  and no overdue rung fired before its due time;
* fires drawn extension attempts (earlier, equal or later dates, any role, with or
  without a reason): a deadline never moves earlier, refusals change nothing;
* opens working-day deadlines (a custom rule, 0 to 233 working days) from drawn
  dates 2004–2027 on a schedule with MADE-UP 2027 data: each lands on a working day,
  is monotone in the number of days, and one whose result falls outside the data
  makes the command raise and change nothing.

``tests/test_calendar.py`` holds the calendar's own properties; these go through the
deadline machinery. Example counts come from the hypothesis profile
(``tests/conftest.py``); the expensive properties ask for fewer, never more.
"""

from __future__ import annotations

import functools
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import chinese_calendar
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from deadline_helpers import (
    FAKE_2027_HOLIDAYS,
    FAKE_2027_WORKDAYS,
    ITEMS,
    ROUND,
    SH,
    DWorld,
    approve_plans,
    custom_policy,
    resume,
    with_fake_2027,
)
from helpers import fingerprint
from xuncha_flow import (
    CalendarError,
    Calendars,
    ChinaWorkingDays,
    DeadlinePolicy,
    DeadlineRule,
    Duration,
    Event,
    GuardRejected,
    InMemoryEventLog,
    InvalidCommand,
    PermissionDenied,
    Role,
    SweepReport,
    YearNotCovered,
)
from xuncha_flow._deadlines import due_instant, rung_time
from xuncha_flow._model import Deadline
from xuncha_flow.testing import ManualClock


def at_most(n: int) -> settings:
    """The profile's example count, lowered to ``n`` for an expensive property."""
    return settings(max_examples=min(settings().max_examples, n))


FEEDBACK = date(2026, 5, 11)
ALL_ITEMS = [i for ids in ITEMS.values() for i in ids]

ladders = st.sampled_from(["three_colour", "five_letters", "seed_ladder"])
due_dates = st.lists(
    st.integers(0, 150).map(lambda n: FEEDBACK + timedelta(days=n)),
    min_size=len(ALL_ITEMS),
    max_size=len(ALL_ITEMS),
)
hours = st.integers(0, 45 * 24)


def policy_for(ladder: str) -> DeadlinePolicy:
    return DeadlinePolicy.supervision(ladder)


def started(ladder: str, due: list[date], prefix: str = "x") -> DWorld:
    w = resume(policy_for(ladder), prefix=prefix)
    approve_plans(w, due)
    return w


# -- what a sweep recorded ---------------------------------------------------------------------
def outcome(event: Event) -> tuple[str, str, str, str]:
    """What a sweep recorded, without when: (type, subject, what, outcome)."""
    p = event.payload
    what = str(p.get("rung") or p.get("day") or p.get("week_of") or p.get("deadline") or "")
    return event.type, event.subject, what, str(p.get("outcome", ""))


def swept(w: DWorld, after: int) -> Counter[tuple[str, str, str, str]]:
    return Counter(outcome(e) for e in w.events()[after:])


def expected_rungs(w: DWorld, deadline: Deadline, now: datetime) -> set[str]:
    ladder = w.engine.process.deadlines.ladder(deadline.ladder or "")
    return {r.name for r in ladder.rungs if rung_time(r, deadline.start_at, deadline.due_at) <= now}


def assert_no_rung_twice(w: DWorld) -> None:
    fired = [
        (e.subject, e.payload["rung"], e.payload.get("generation", 1))
        for e in w.events()
        if e.type == "deadline.escalate"
    ]
    assert len(fired) == len(set(fired)), Counter(fired).most_common(3)
    for deadline in w.state.deadlines.values():
        names = [(f.rung, f.generation) for f in deadline.fired]
        assert len(names) == len(set(names))
    missing = [(e.subject, e.payload["day"]) for e in w.events() if e.type == "unit.report_missing"]
    assert len(missing) == len(set(missing))
    weeks = [e.payload["week_of"] for e in w.events() if e.type == "round.bulletin_missing"]
    assert len(weeks) == len(set(weeks))


def partition(salt: int, parts: int) -> list[Callable[[str, tuple[str, str]], bool]]:
    """``parts`` disjoint selections covering every agenda entry."""

    def part(i: int) -> Callable[[str, tuple[str, str]], bool]:
        def select(stream: str, key: tuple[str, str]) -> bool:
            return zlib.crc32(f"{salt}|{stream}|{key[0]}|{key[1]}".encode()) % parts == i

        return select

    return [part(i) for i in range(parts)]


def sweep(w: DWorld, at: datetime, salt: int, parts: int, order: list[int]) -> SweepReport:
    """One sweep at ``at``, or ``parts`` sweeps over a partition, in ``order``."""
    if parts == 1:
        return w.engine.sweep(at)
    selections = partition(salt, parts)
    events: list[Event] = []
    for i in sorted(range(parts), key=lambda k: order[k % len(order)] if order else k):
        events += w.engine.sweep(at, select=selections[i]).events
    return SweepReport(at=at, events=tuple(events))


sweeps = st.lists(
    st.tuples(
        hours,  # advance the clock by this much first
        st.integers(0, 60 * 24),  # then sweep this many hours before the clock
        st.integers(1, 4),  # in this many parts
        st.integers(0, 2**16),  # split this way
    ),
    max_size=8,
)


# -- no rung twice; any split, any order gives one sweep's result ------------------------------
@at_most(300)
@given(
    ladder=ladders,
    due=due_dates,
    steps=sweeps,
    final_parts=st.integers(1, 4),
    order=st.permutations(range(4)),
)
def test_no_rung_fires_twice_and_any_schedule_of_sweeps_adds_up_to_one_sweep(
    ladder: str,
    due: list[date],
    steps: list[tuple[int, int, int, int]],
    final_parts: int,
    order: list[int],
) -> None:
    w = started(ladder, due)
    start = w.state.version
    for advance, back, parts, salt in steps:
        w.clock.advance(hours=advance)
        at = w.clock.now() - timedelta(hours=back)
        report = sweep(w, at, salt, parts, order)
        for event in report.events:
            if event.type == "deadline.escalate":
                assert datetime.fromisoformat(str(event.payload["fire_at"])) <= at
        assert_no_rung_twice(w)
    final = w.clock.now()
    sweep(w, final, 7, final_parts, order)
    assert_no_rung_twice(w)
    assert w.engine.sweep().events == ()  # nothing left, however often

    twin = started(ladder, due, prefix="twin")
    twin.clock.set(final)
    twin_start = twin.state.version
    twin.engine.sweep(final)
    assert swept(w, start) == swept(twin, twin_start)
    for deadline in w.state.deadlines.values():
        if deadline.state == "running":
            note(f"{deadline.id}: {deadline.fired}")
            assert {f.rung for f in deadline.fired} == expected_rungs(w, deadline, final)
    assert w.engine.replay(ROUND) == w.state


# -- closed, withdrawn, dropped: the ladder stops ------------------------------------------------
actions = st.lists(
    st.one_of(
        st.tuples(st.just("sweep"), hours),
        st.tuples(st.just("close"), st.sampled_from(ALL_ITEMS)),
        st.tuples(st.just("withdraw"), st.sampled_from(ALL_ITEMS)),
        st.tuples(st.just("add"), st.sampled_from(ALL_ITEMS)),
        st.tuples(st.just("drop"), st.sampled_from(ALL_ITEMS)),
    ),
    max_size=12,
)


def _act(w: DWorld, action: str, arg: Any) -> None:
    if action == "sweep":
        w.clock.advance(hours=arg)
        w.engine.sweep()
        return
    item = w.state.items[arg]
    if item.state in ("closed", "withdrawn"):
        return
    if action == "close" and item.state == "rectifying":
        w.finish(arg)
    elif action == "withdraw":
        w.do("item", arg, "withdraw", reason="经核实不属实")
    elif action == "add" and item.state == "rectifying":
        w.add_approved_measure(arg, f"M-{arg}-{len(item.measure_ids) + 1}", due=w.clock.today())
    elif action == "drop":
        live = [m for m in item.measure_ids if w.state.measures[m].state == "planned"]
        if len(live) > 1:  # an item keeps at least one measure; the plan is approved
            w.do("measure", live[-1], "drop", reason="措施调整", actor=w.reviewer)


def _stopped_subjects(w: DWorld) -> dict[str, int]:
    """Deadline subject -> the log version from which nothing may fire for it."""
    stopped: dict[str, int] = {}
    for event in w.events():
        if event.type in ("item.close", "item.withdraw"):
            stopped.setdefault(event.subject, event.version)
            for measure_id in w.state.items[event.subject].measure_ids:
                stopped.setdefault(measure_id, event.version)
        elif event.type == "measure.drop":
            stopped.setdefault(event.subject, event.version)
    return stopped


@at_most(300)
@given(ladder=ladders, due=due_dates, steps=actions, final=hours)
def test_no_rung_for_a_closed_or_withdrawn_item(
    ladder: str, due: list[date], steps: list[tuple[str, Any]], final: int
) -> None:
    w = started(ladder, due)
    for action, arg in steps:
        _act(w, action, arg)
        for item in w.state.items.values():
            if item.state in ("closed", "withdrawn"):
                subjects = {item.id, *item.measure_ids}
                running = [
                    d.id
                    for d in w.state.deadlines.values()
                    if d.subject in subjects and d.state in ("running", "paused")
                ]
                assert running == [], running
    w.clock.advance(hours=final)
    w.engine.sweep()
    stopped = _stopped_subjects(w)
    deadlines = w.state.deadlines
    for event in w.events():
        if event.type == "deadline.escalate":
            subject = deadlines[event.subject].subject
            assert event.version < stopped.get(subject, 10**9), (event.subject, event.payload)
        elif event.type == "recommendation.recommend":
            assert event.version < stopped.get(str(event.payload["subject"]), 10**9)
    for deadline in deadlines.values():
        if deadline.subject in stopped:
            assert deadline.state in ("met", "cancelled")
    assert_no_rung_twice(w)


# -- overdue on the next sweep --------------------------------------------------------------------
steps_with_extensions = st.lists(
    st.tuples(
        hours,
        st.booleans(),  # sweep after advancing
        st.none() | st.tuples(st.sampled_from(ALL_ITEMS), st.integers(1, 60)),  # extend
    ),
    max_size=6,
)


@at_most(300)
@given(ladder=ladders, due=due_dates, steps=steps_with_extensions, last=hours)
def test_after_its_due_time_every_open_deadline_gets_its_overdue_rung_on_the_next_sweep(
    ladder: str,
    due: list[date],
    steps: list[tuple[int, bool, tuple[str, int] | None]],
    last: int,
) -> None:
    w = started(ladder, due)
    overdue_rung = w.engine.process.deadlines.ladder(ladder).overdue.name
    for advance, do_sweep, extension in steps:
        w.clock.advance(hours=advance)
        if do_sweep:
            w.engine.sweep()
        if extension is not None:
            deadline = w.deadline(f"measure_due:M-{extension[0]}")
            if deadline.state == "running":
                w.extend(deadline.id, deadline.due + timedelta(days=extension[1]))
    w.clock.advance(hours=last)
    report = w.engine.sweep()
    open_ = [d for d in w.state.deadlines.values() if d.state == "running"]
    assert open_  # the report deadlines at least
    for deadline in open_:
        assert deadline.ladder in (ladder, f"{ladder}_half_time")
        if deadline.due_at <= report.at:
            assert deadline.has_fired(overdue_rung), (deadline.id, deadline.due_at, report.at)
    # and no overdue rung ever fired before the due time it had when it fired
    due_at: dict[str, datetime] = {}
    for event in w.events():
        if event.type in ("deadline.open", "deadline.extend"):
            due_at[event.subject] = due_instant(date.fromisoformat(str(event.payload["due"])), SH)
        elif event.type == "deadline.escalate" and event.payload["kind"] == "overdue":
            assert datetime.fromisoformat(str(event.payload["fire_at"])) == due_at[event.subject]
            assert event.timestamp >= due_at[event.subject]
    listed = [d for _, d in w.engine.overdue(report.at)]
    assert all(d.has_fired(overdue_rung) for d in listed)


# -- extensions only ever move later ------------------------------------------------------------
ROLES = [
    Role.LEADING_GROUP,
    Role.SUPERVISION_OFFICE,
    Role.INSPECTION_OFFICE,
    Role.INSPECTED_ORGANIZATION,
    Role.INSPECTION_TEAM,
    Role.SECRETARY_MEETING,
]
APPROVER_ROLES = [Role.LEADING_GROUP, Role.SUPERVISION_OFFICE]
REASON = "客观原因，批准延期"
attempts = st.lists(
    st.tuples(
        st.sampled_from(ALL_ITEMS),
        st.integers(-2, 2) | st.integers(-40, 40),  # days from the current due date
        st.sampled_from(APPROVER_ROLES) | st.sampled_from(ROLES),
        st.just(REASON) | st.sampled_from([None, "", "  ", REASON]),
        hours,
    ),
    min_size=1,
    max_size=10,
)


@at_most(300)
@given(due=due_dates, tries=attempts)
def test_an_extension_never_moves_a_deadline_earlier(
    due: list[date], tries: list[tuple[str, int, Role, str | None, int]]
) -> None:
    w = started("three_colour", due)
    approvers = w.engine.process.policy.approvers
    for item_id, days, role, reason, advance in tries:
        w.clock.advance(hours=advance)
        deadline = w.deadline(f"measure_due:M-{item_id}")
        unit_id = w.state.items[item_id].unit_id
        who = {
            Role.INSPECTED_ORGANIZATION: w.unit_actor(unit_id),
            Role.INSPECTION_TEAM: w.team_actor(unit_id),
        }.get(role) or w.cast.standing(role)
        assert who is not None
        assert who.role is role
        before = fingerprint(w.engine)
        new_due = deadline.due + timedelta(days=days)
        try:
            w.extend(deadline.id, new_due, actor=who, reason=reason)
        except (GuardRejected, InvalidCommand, PermissionDenied):
            assert fingerprint(w.engine) == before
            assert days <= 0 or role not in approvers or not (reason and reason.strip())
            continue
        assert days > 0
        assert role in approvers
        assert reason
        assert reason.strip()
        moved = w.deadline(deadline.id)
        assert moved.due == new_due > deadline.due
        assert moved.due_at - deadline.due_at == timedelta(days=days)
    for deadline in w.state.deadlines.values():
        chain = [deadline.original_due] + [x.to_due for x in deadline.extensions]
        assert chain == sorted(set(chain))  # strictly later each time
        assert all(
            x.from_due == previous for x, previous in zip(deadline.extensions, chain, strict=False)
        )
        assert deadline.due == chain[-1]


# -- working days through a deadline rule --------------------------------------------------------
COUNTS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233)
LEAD_RULES = custom_policy(
    *(
        DeadlineRule(
            name=f"lead_wd_{n}",
            label=f"线索 {n} 个工作日",
            source="a test rule [practice]",
            subject="lead",
            anchors=("lead.transfer",),
            start="payload:transferred_on",
            duration=Duration(amount=n, unit="working_days"),
            met_by=("lead.report_back",),
            ladder="three_colour",
        )
        for n in COUNTS
    ),
    name="lead-working-days",
)
SCHEDULE = with_fake_2027()  # official 2004–2026 + MADE-UP 2027
LAST = date(2027, 12, 31)
CN = ChinaWorkingDays(SCHEDULE)
_FAKE_OFF = {date.fromisoformat(d) for d in FAKE_2027_HOLIDAYS}
_FAKE_ON = {date.fromisoformat(d) for d in FAKE_2027_WORKDAYS}


def reference_is_working(d: date) -> bool | None:
    """Independent of ``_calendar``: ``chinese_calendar.is_workday`` up to 2026, the
    MADE-UP 2027 data by hand, None (no data) from 2028."""
    if d.year <= 2026:
        return bool(chinese_calendar.is_workday(d))
    if d.year == 2027:
        return d in _FAKE_ON or (d.weekday() < 5 and d not in _FAKE_OFF)
    return None


def reference_add(start: date, counts: tuple[int, ...]) -> dict[int, date] | None:
    """The n-th working day after ``start`` for each n, stepping one day at a time;
    None if one of them is past the data."""
    out, d, seen = {0: start}, start, 0
    for n in sorted(c for c in counts if c):
        while seen < n:
            d += timedelta(days=1)
            working = reference_is_working(d)
            if working is None:
                return None
            seen += working
        out[n] = d
    return out


@functools.cache
def _lead_base(opened: date) -> tuple[tuple[Event, ...], datetime]:
    start = datetime(opened.year, opened.month, opened.day, 9, tzinfo=SH)
    w = DWorld(LEAD_RULES, schedule=SCHEDULE, id_prefix="base", start=start)
    w.to_onsite({"U-1": ["P-1"]})
    return tuple(w.events()), w.clock.now()


def lead_world(transfer: date) -> DWorld:
    """A fresh engine over a round on site, opened ten days before ``transfer`` (the
    dates of a command lie around its round: see ``DateWindow``), that opens
    working-day deadlines. Rounds are built once per opening day."""
    events, now = _lead_base(transfer - timedelta(days=10))
    log = InMemoryEventLog()
    log.append(ROUND, 0, list(events))
    return DWorld(
        LEAD_RULES,
        schedule=SCHEDULE,
        log=log,
        clock=ManualClock(now),
        id_prefix="lead",
    )


@given(start=st.dates(date(2003, 12, 31), date(2027, 12, 31)) | st.dates(date(2026, 10, 1), LAST))
def test_working_day_deadlines_land_on_working_days_monotone_in_n_or_raise(start: date) -> None:
    w = lead_world(start)
    if start > w.clock.today():  # a transfer date may not lie in the future
        w.clock.set(datetime(start.year, start.month, start.day, 12, tzinfo=SH))
    before = fingerprint(w.engine)
    expected = reference_add(start, COUNTS)
    if expected is None:
        # the result of one count falls outside the data: the command raises, nothing changes
        with pytest.raises(CalendarError) as raised:
            w.transfer_lead("L-1", "P-1", start)
        assert isinstance(raised.value, YearNotCovered)
        assert raised.value.year == 2028
        assert fingerprint(w.engine) == before
        return
    w.transfer_lead("L-1", "P-1", start)
    due = {n: w.deadline(f"lead_wd_{n}:L-1").due for n in COUNTS}
    assert due == expected
    assert due[0] == start
    for n in COUNTS[1:]:
        assert CN.is_working_day(due[n])
        assert due[n] > start
    days = [due[n] for n in COUNTS]
    assert days == sorted(set(days))  # strictly increasing in n
    for n in COUNTS:
        deadline = w.deadline(f"lead_wd_{n}:L-1")
        assert deadline.due_at == datetime.combine(
            due[n] + timedelta(days=1), datetime.min.time(), SH
        )


@given(start=st.dates(date(2026, 7, 1), date(2026, 12, 31)), extra=st.integers(1, 400))
def test_a_result_past_the_calendar_data_raises_through_calendars(start: date, extra: int) -> None:
    official = Calendars()  # chinese-calendar's data: up to 2026
    left = ChinaWorkingDays(SCHEDULE).working_days_between(start, date(2026, 12, 31))
    duration = Duration(amount=left + extra, unit="working_days")
    with pytest.raises(YearNotCovered) as info:
        official.add(start, duration)
    assert info.value.year == 2027
    host = Calendars(schedule=SCHEDULE)  # with the MADE-UP 2027 data
    left_2027 = len(SCHEDULE.working_days(2027))
    if extra <= left_2027:
        loaded = host.add(start, duration)
        assert loaded.year == 2027
        assert CN.is_working_day(loaded)
        assert CN.working_days_between(date(2026, 12, 31), loaded) == extra
    else:
        with pytest.raises(YearNotCovered) as info:
            host.add(start, duration)
        assert info.value.year == 2028


def test_the_properties_use_the_hypothesis_profile() -> None:
    assert settings().max_examples >= 100
    assert at_most(10).max_examples == 10
    assert at_most(10**6).max_examples == settings().max_examples
