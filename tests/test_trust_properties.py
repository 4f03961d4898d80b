"""Property tests of identifiers and of separation of duties.

* Organization ids: normalizing is idempotent; two ids are one organization
  exactly when they are equal after normalization; case, full-width and invisible
  variants of an id are the same organization; a valid id stays valid and is
  stored as it is.
* No organization ever judges its own work — approves, verifies, closes, rejects,
  withdraws, marks long-term, evaluates, extends, pauses, decides — under the three
  built-in role policies and under custom definitions made by re-assigning the
  roles of the built-in transitions at random. Either ``Process.from_data`` refuses
  the definition (and only for separation of duties), or the engine refuses every
  such command by any actor of the organization concerned, in any role, whatever
  the case or width it writes its organization in, while a round is driven through
  plan review, rectification, verification, deadlines and recommendations.

Examples per run come from the hypothesis profile (``tests/conftest.py``).
"""

from __future__ import annotations

import copy
import itertools
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import hypothesis
from hypothesis import given, note, settings
from hypothesis import strategies as st

from xuncha_flow import (
    DEFAULT_TIMEZONE,
    Actor,
    CommandRefused,
    DeadlinePolicy,
    Engine,
    InvalidDefinition,
    Process,
    Role,
    RolePolicy,
    RoundState,
    normalize_id,
    same_organization,
    snapshot,
)
from xuncha_flow._effects import current
from xuncha_flow.testing import Cast, ManualClock

TARGETED = settings(max_examples=max(20, settings.default.max_examples // 5))
POLICIES = {
    "supervision_office": RolePolicy.supervision_office(),
    "joint_supervision": RolePolicy.joint_supervision(),
    "three_party": RolePolicy.three_party(),
}
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", " ", "\u3000", "\t"]
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.组织部纪委县"


def full_width(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (ＦＦ０１…)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


ids = st.text(ID_ALPHABET, min_size=1, max_size=20).filter(lambda s: s[0].isalnum())


# -- identifiers ---------------------------------------------------------------------------
@given(st.text())
def test_normalizing_an_id_is_idempotent(text: str) -> None:
    once = normalize_id(text)
    assert normalize_id(once) == once
    assert not any(c.isspace() or unicodedata.category(c) == "Cf" for c in once)


@given(st.text(), st.text())
def test_same_organization_is_equality_after_normalization(a: str, b: str) -> None:
    assert same_organization(a, b) == (normalize_id(a) == normalize_id(b))
    assert same_organization(a, b) == same_organization(b, a)
    assert same_organization(a, a)


@given(ids, st.data())
def test_case_width_and_invisible_variants_are_one_organization(
    org: str, data: st.DataObject
) -> None:
    variant = data.draw(st.sampled_from([str.upper, str.lower, str.swapcase, full_width]))(org)
    cuts = data.draw(st.lists(st.integers(0, len(variant)), max_size=3))
    for cut in sorted(cuts, reverse=True):
        variant = variant[:cut] + data.draw(st.sampled_from(INVISIBLE)) + variant[cut:]
    note(repr(variant))
    assert same_organization(org, variant)
    assert normalize_id(org) == normalize_id(variant)


@given(ids, ids)
def test_ids_that_differ_beyond_case_are_different_organizations(a: str, b: str) -> None:
    if a.casefold() != b.casefold():
        assert not same_organization(a, b)


@given(ids, st.sampled_from([str, full_width]))
def test_a_valid_id_is_kept_as_its_nfkc_form(org: str, form: Any) -> None:
    actor = Actor(id="p-1", role=Role.INSPECTION_OFFICE, organization=form(org))
    assert actor.organization == unicodedata.normalize("NFKC", form(org)) == org
    assert Actor.model_validate(actor.model_dump()) == actor


# -- no organization judges its own work -------------------------------------------------------
OWN = "org-1"
"""The inspected unit U-1's organization: every check below is about its work."""
START = datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE)
REASON = "依据核查情况"
CAST = Cast()


@st.composite
def custom_process(draw: st.DrawFn) -> tuple[str, dict[str, Any], RolePolicy]:
    """The built-in definitions of a policy, with the roles of some events (all the
    transitions of the event alike, so branches agree) drawn at random. Automatic
    transitions keep theirs: the engine fires them for the commands that cause them."""
    name = draw(st.sampled_from(sorted(POLICIES)), label="policy")
    policy = POLICIES[name]
    data = {k: d.to_data() for k, d in Process.standard(policy).definitions.items()}
    data = copy.deepcopy(data)
    roles = st.sets(st.sampled_from(list(Role)), min_size=1, max_size=3)
    for kind in sorted(data):
        events = sorted({t["event"] for t in data[kind]["transitions"] if not t.get("automatic")})
        if not data[kind]["create"].get("automatic"):
            events.append("<create>")
        for event in draw(st.lists(st.sampled_from(events), unique=True, max_size=2)):
            new = sorted(r.value for r in draw(roles, label=f"{kind}.{event}"))
            if event == "<create>":
                data[kind]["create"]["roles"] = new
            for t in data[kind]["transitions"]:
                if t["event"] == event:
                    t["roles"] = new
    return name, data, policy


def _payload(kind: str, event: str, today: Any) -> dict[str, Any]:
    day = today.isoformat()
    later = (today + timedelta(days=40)).isoformat()
    return {
        ("unit", "deliver_feedback"): {"delivered_on": day},
        ("unit", "publish"): {"in_party": True, "public": True},
        ("unit", "evaluate"): {"score": "92", "grade": "good"},
        ("item", "mark_long_term"): {"milestones": [{"title": "阶段一", "due": later}]},
        ("item", "reopen"): {"lookback_round_id": "R-LB"},
        ("deadline", "extend"): {"due": (today + timedelta(days=400)).isoformat()},
    }.get((kind, event), {})


class Round:
    """One round under a (possibly custom) process, driven by whoever may act."""

    def __init__(self, process: Process) -> None:
        self.clock = ManualClock(START)
        counter = itertools.count(1)
        self.engine = Engine(clock=self.clock, process=process, ids=lambda: f"e-{next(counter)}")
        self.process = process
        self.serial = itertools.count(1)
        self.stuck: str | bool = False

    @property
    def state(self) -> RoundState:
        return self.engine.state("R-1")

    def pool(self) -> list[Actor]:
        """Who may try a step: the units themselves, their teams, the standing bodies,
        lead receivers, and one outsider for every role — never an insider of org-1
        acting in another role than its own."""
        outsiders = [Actor(id=f"x-{r.value}", role=r, organization=f"x-{r.value}") for r in Role]
        return [
            CAST.unit(OWN),
            CAST.unit("org-2"),
            CAST.team("team-1"),
            CAST.team("team-2"),
            CAST.office,
            CAST.supervision,
            CAST.leading_group,
            CAST.secretary,
            CAST.discipline,
            CAST.organization_dept,
            *outsiders,
        ]

    def step(
        self,
        kind: str,
        subject: str,
        event: str,
        payload: dict[str, Any] | None = None,
        attachments: Sequence[str] = (),
    ) -> bool:
        """Fire the step as the first actor of the pool the engine accepts it from."""
        if self.stuck:
            return False
        for actor in self.pool():
            cmd = {
                "command_id": f"c-{next(self.serial)}",
                "round_id": "R-1",
                "kind": kind,
                "subject": subject,
                "event": event,
                "actor": actor,
                "payload": payload if payload is not None else {},
                "reason": REASON,
                "attachments": tuple(attachments),
            }
            try:
                self.engine.preview(cmd)
            except CommandRefused:
                continue
            try:
                self.engine.execute(cmd)
            except CommandRefused as exc:
                # the custom roles allow the step but not what the engine derives
                # from it (an automatic transition's roles): the process stops here
                self.stuck = f"{kind}.{event} {subject} by {actor}: {exc}"
                return False
            return True
        self.stuck = f"nobody may {kind}.{event} {subject}: the round stops here"
        return False

    def drive(self, check: Any) -> None:
        """Through the process, checking at every stage."""
        s = self.step
        today = lambda: self.clock.today()  # noqa: E731 - read at each step
        s("round", "R-1", "open", {"name": "测试轮次", "level": "county"})
        for unit, org, team in (("U-1", OWN, "team-1"), ("U-2", "org-2", "team-2")):
            s(
                "unit",
                unit,
                "add",
                {
                    "name": f"{unit} 党组",
                    "organization_id": org,
                    "team_id": team,
                    "onsite_start": "2026-03-09",
                    "onsite_end": "2026-04-17",
                },
            )
        s("round", "R-1", "approve")
        self.clock.set(START + timedelta(days=7))
        s("round", "R-1", "launch")
        for item, unit in (("P-1", "U-1"), ("P-2", "U-1"), ("P-3", "U-1"), ("Q-1", "U-2")):
            s("item", item, "record", {"unit_id": unit, "description": "问题"})
        s("item", "P-3", "order_immediate_fix")
        check(self)
        for item in ("P-1", "P-2", "Q-1"):
            s("item", item, "confirm")
        s("item", "P-3", "submit", {"summary": "已当场整改"}, attachments=["ev/P-3.pdf"])
        check(self)
        s("item", "P-3", "verify")
        s("item", "P-3", "close")
        s(
            "lead",
            "L-1",
            "transfer",
            {
                "item_ids": ["P-1"],
                "receiver": "other",
                "receiver_org": OWN,
                "summary": "线索",
                "transferred_on": today().isoformat(),
            },
        )
        self.clock.set(START + timedelta(days=47))
        for unit in ("U-1", "U-2"):
            s("unit", unit, "leave_site")
        s("round", "R-1", "conclude_onsite")
        for unit in ("U-1", "U-2"):
            s("unit", unit, "decide_report")
        s("round", "R-1", "conclude_report")
        self.clock.set(START + timedelta(days=70))
        for unit in ("U-1", "U-2"):
            s("unit", unit, "deliver_feedback", _payload("unit", "deliver_feedback", today()))
        s("round", "R-1", "start_rectification")
        due = (today() + timedelta(days=30)).isoformat()
        for item in ("P-1", "P-2", "Q-1"):
            s("item", item, "claim")
            s(
                "measure",
                f"M-{item}",
                "add",
                {
                    "item_id": item,
                    "text": "措施",
                    "responsible_leader": "l-1",
                    "responsible_person": "p-1",
                    "due_date": due,
                },
            )
        for unit in ("U-1", "U-2"):
            s("unit", unit, "submit_plan")
        check(self)
        for unit in ("U-1", "U-2"):
            s("unit", unit, "approve_plan")
        s(
            "measure",
            "M-P-1-b",
            "add",
            {
                "item_id": "P-1",
                "text": "新增措施",
                "responsible_leader": "l-1",
                "responsible_person": "p-1",
                "due_date": due,
            },
        )
        s("measure", "M-P-1", "start")
        s("measure", "M-P-1", "complete", {"done_on": today().isoformat()})
        check(self)
        s("measure", "M-P-1-b", "approve")
        s("measure", "M-P-1-b", "start")
        s("measure", "M-P-1-b", "complete", {"done_on": today().isoformat()})
        s("item", "P-1", "submit", {"summary": "已整改"}, attachments=["ev/P-1.pdf"])
        check(self)
        s("item", "P-1", "verify")
        check(self)
        self.clock.set(START + timedelta(days=140))  # deadlines overdue, recommendations
        self.engine.sweep()
        check(self)


def insiders(org: str, variant: Any) -> list[Actor]:
    """An actor of ``org`` in every role, writing the organization as ``variant`` does."""
    return [Actor(id=f"in-{r.value}", role=r, organization=variant(org)) for r in Role]


def owner_of(state: RoundState, kind: str, subject: str) -> tuple[str, Role | None] | None:
    """Who answers for a subject and in which role it acts on it (None: not at all)."""
    if kind == "unit":
        unit = state.units[subject]
        return unit.organization_id, Role.INSPECTED_ORGANIZATION
    if kind == "item":
        return state.units[
            state.items[subject].unit_id
        ].organization_id, Role.INSPECTED_ORGANIZATION
    if kind == "measure":
        item = state.items[state.measures[subject].item_id]
        return state.units[item.unit_id].organization_id, Role.INSPECTED_ORGANIZATION
    if kind == "lead":
        lead = state.leads[subject]
        role = {
            "discipline_commission": Role.DISCIPLINE_COMMISSION,
            "organization_department": Role.ORGANIZATION_DEPARTMENT,
        }.get(lead.receiver, Role.FUNCTIONAL_DEPARTMENT)
        return lead.receiver_org, role
    if kind == "deadline":
        deadline = state.deadlines[subject]
        if deadline.subject_kind == "round":
            return None
        found = owner_of(state, deadline.subject_kind, deadline.subject)
        return (found[0], None) if found else None
    if kind == "recommendation":
        return owner_of(state, "deadline", state.recommendations[subject].deadline_id)
    return None


def no_self_judging(variant: Any) -> Any:
    """A check for :meth:`Round.drive`: no actor of org-1, in any role, may fire
    anything on what org-1 owns unless it acts in the owner's own role, and then
    nothing marked ``independent``; ``allowed_events`` offers none of it, and firing
    it is refused and changes nothing."""

    def check(r: Round) -> None:
        state = r.state
        before = snapshot(state).model_dump(mode="json"), state.version, state.head
        tables = {
            "unit": state.units,
            "item": state.items,
            "measure": state.measures,
            "lead": state.leads,
            "deadline": state.deadlines,
            "recommendation": state.recommendations,
        }
        for kind, table in tables.items():
            definition = r.process.definition(kind)
            for subject in sorted(table):
                owner = owner_of(state, kind, subject)
                if owner is None or not same_organization(owner[0], OWN):
                    continue
                source = definition.state_by_value(current(state, kind, subject).state).name
                for actor in insiders(OWN, variant):
                    allowed = r.engine.allowed_events(actor, "R-1", kind, subject)  # type: ignore[arg-type]
                    if actor.role is not owner[1]:
                        assert allowed == (), (actor, kind, subject, allowed)
                    for event in definition.events_from(source):
                        spec = definition.candidates(event, source)[0]
                        if spec.automatic or actor.role not in spec.roles:
                            continue  # refused for its role alone: nothing to learn
                        if not (spec.independent or actor.role is not owner[1]):
                            continue  # the owner's own work in its own role
                        assert event not in allowed, (actor, kind, subject, event)
                        try:
                            r.engine.fire(
                                actor,
                                "R-1",
                                kind,  # type: ignore[arg-type]
                                subject,
                                event,
                                _payload(kind, event, r.clock.today()),
                                reason=REASON,
                                attachments=["ev/x.pdf"],
                            )
                        except CommandRefused:
                            pass
                        else:
                            raise AssertionError(f"{actor} fired {kind}.{event} on {subject}")
        after = r.state
        assert (snapshot(after).model_dump(mode="json"), after.version, after.head) == before

    return check


@TARGETED
@given(custom=custom_process(), variant=st.sampled_from([str, str.upper, full_width]))
def test_no_organization_judges_its_own_work(
    custom: tuple[str, dict[str, Any], RolePolicy], variant: Any
) -> None:
    name, data, policy = custom
    problems: tuple[str, ...] = ()
    try:
        process = Process.from_data(data, policy=policy, deadlines=DeadlinePolicy.standard())
    except InvalidDefinition as exc:
        problems = exc.problems
    if problems:
        hypothesis.event("refused when built")
        note(f"refused: {problems}")
        assert all("separation of duties" in p for p in problems), problems
        return
    unit = Role.INSPECTED_ORGANIZATION
    for definition in process.definitions.values():
        for t in definition.transitions:
            assert not (t.independent and unit in t.roles), (definition.kind, t.event)
    r = Round(process)
    r.drive(no_self_judging(variant))
    hypothesis.event("driven to the end" if not r.stuck else "driven part of the way")
    note(f"{name}: reached version {r.engine.state('R-1').version}, stuck={r.stuck}")
    assert r.engine.log.verify().ok


def test_the_built_in_policies_drive_the_whole_check() -> None:
    """Unchanged, each built-in policy gets the round through every check point."""
    for policy in POLICIES.values():
        r = Round(Process.standard(policy, deadlines=DeadlinePolicy.standard()))
        r.drive(no_self_judging(str.upper))
        assert not r.stuck
        state = r.state
        assert state.items["P-1"].state == "verified"
        assert state.recommendations, "the sweep raised recommendations to decide"
        assert any(d.state == "running" for d in state.deadlines.values())
