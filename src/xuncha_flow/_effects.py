"""What each event changes, and which events follow from it.

:func:`apply_event` folds one event into a :class:`~xuncha_flow._model.RoundState`.
It is the only code that changes state, used alike for live commands and for
replay, so replaying a log reproduces the live state exactly. It trusts guards
(it does not re-run them) but checks that the log is consistent: versions in order,
each event linked to the previous hash, each transition leaving the state the
subject is really in.

:func:`follow_ups` lists the automatic transitions an event causes (feedback
delivered → every confirmed item fed back; last child closed → parent closed; an
item reopened by a look-back → its unit and round back to rectification; a measure
added before the plan's approval → included in the plan; ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from ._definition import Definition
from ._errors import LogCorrupted
from ._events import Event
from ._model import (
    Deadline,
    Extension,
    Firing,
    Item,
    Lead,
    Measure,
    MilestoneState,
    Recommendation,
    Rejection,
    Reopening,
    Round,
    RoundState,
    Submission,
    Table,
    Unit,
    Verification,
)

__all__ = ["FollowUp", "apply_event", "follow_ups"]

FollowUp = tuple[str, str, str]
"""(subject kind, subject id, event identifier) of an automatic transition."""

_TABLE: dict[str, Table] = {
    "unit": "units",
    "item": "items",
    "measure": "measures",
    "lead": "leads",
    "deadline": "deadlines",
    "recommendation": "recommendations",
}
_Effect = Callable[[RoundState, Event, Any], Any]


def _d(value: Any) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _when(event: Event) -> datetime:
    return event.timestamp


# -- creation ------------------------------------------------------------------------
def _open_round(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    defs = p.get("definitions") or {}
    assert isinstance(defs, dict)
    state.set(
        "round",
        Round(
            id=e.subject,
            name=str(p["name"]),
            level=str(p["level"]),
            kind=str(p["kind"]),
            state=e.to_state,
            opened_at=_when(e),
            theme=str(p.get("theme") or ""),
            parent_round_id=_opt(p.get("parent_round_id")),
            lookback_of=tuple(str(x) for x in _seq(p.get("lookback_of"))),
            planned_start=_d(p.get("planned_start")),
            planned_end=_d(p.get("planned_end")),
            definitions=tuple(sorted((str(k), str(v)) for k, v in defs.items())),
        ),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _add_unit(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    state.put(
        "units",
        Unit(
            id=e.subject,
            name=str(p["name"]),
            organization_id=str(p["organization_id"]),
            state=e.to_state,
            level=str(p.get("level") or ""),
            head=str(p.get("head") or ""),
            leader_in_charge=str(p.get("leader_in_charge") or ""),
            team_id=_opt(p.get("team_id")),
            onsite_start=_d(p.get("onsite_start")),
            onsite_end=_d(p.get("onsite_end")),
        ),
    )
    rnd = state.round
    assert rnd is not None
    state.set("round", attrs.evolve(rnd, unit_ids=(*rnd.unit_ids, e.subject)))


def _record_item(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    unit = state.units[str(p["unit_id"])]
    state.put(
        "items",
        Item(
            id=e.subject,
            unit_id=unit.id,
            description=str(p["description"]),
            state=e.to_state,
            found_at=_when(e),
            category=str(p.get("category") or ""),
            source=str(p.get("source") or "other"),
            common=bool(p.get("common")),
            concerns_head=bool(p.get("concerns_head")),
            amount_involved=Decimal(str(p.get("amount_involved") or "0")),
        ),
    )
    state.put("units", attrs.evolve(unit, item_ids=(*unit.item_ids, e.subject)))


def _add_measure(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    item = state.items[str(p["item_id"])]
    state.put(
        "measures",
        Measure(
            id=e.subject,
            item_id=item.id,
            text=str(p["text"]),
            state=e.to_state,
            responsible_leader=_opt(p.get("responsible_leader")),
            responsible_person=_opt(p.get("responsible_person")),
            due_date=_d(p.get("due_date")),
        ),
    )
    state.put("items", attrs.evolve(item, measure_ids=(*item.measure_ids, e.subject)))


def _transfer_lead(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    item_ids = tuple(str(i) for i in _seq(p.get("item_ids")))
    state.put(
        "leads",
        Lead(
            id=e.subject,
            receiver=str(p["receiver"]),
            receiver_org=str(p["receiver_org"]),
            summary=str(p["summary"]),
            transferred_on=date.fromisoformat(str(p["transferred_on"])),
            state=e.to_state,
            item_ids=item_ids,
        ),
    )
    for item_id in item_ids:
        item = state.items[item_id]
        state.put("items", attrs.evolve(item, lead_ids=(*item.lead_ids, e.subject)))
    rnd = state.round
    assert rnd is not None
    state.set("round", attrs.evolve(rnd, lead_ids=(*rnd.lead_ids, e.subject)))


# -- transitions: what changes besides the state ---------------------------------------
def _item_changes(state: RoundState, e: Event, item: Item, name: str) -> dict[str, Any]:
    p, at = e.payload, _when(e)
    if name == "order_immediate_fix":
        return {"immediate": True}
    if name == "include_in_report":
        return {"immediate": False}
    if name == "feed_back":
        return {"fed_back_at": at}
    if name == "claim":
        return {"claimed_by": str(p.get("claimed_by") or e.actor.id)}
    if name == "refine":
        _create_children(state, e, item)
        return {"children": tuple(str(c["id"]) for c in _children(e))}
    if name == "mark_long_term":
        stones = tuple(
            MilestoneState(str(m["title"]), date.fromisoformat(str(m["due"])))
            for m in _seq(p.get("milestones"))
        )
        return {"long_term": True, "milestones": stones}
    if name == "complete_milestone":
        done = date.fromisoformat(str(p["done_on"]))
        stones = tuple(
            attrs.evolve(m, done_on=done) if m.title == p["title"] else m for m in item.milestones
        )
        return {"milestones": stones}
    if name == "submit":
        return {
            "submission": Submission(
                e.actor, at, e.attachments, str(e.from_state), str(p.get("summary") or "")
            ),
            "verification": None,
            "amount_recovered": Decimal(str(p.get("amount_recovered") or "0")),
            "rules_established": tuple(str(r) for r in _seq(p.get("rules_established"))),
            "people_held_accountable": int(str(p.get("people_held_accountable") or 0)),
        }
    if name == "reject":
        return {
            "rejections": (*item.rejections, Rejection(e.actor, at, e.reason or "")),
            "verification": None,
        }
    if name == "verify":
        return {"verification": Verification(e.actor, at, str(p.get("notes") or ""))}
    if name in ("close", "children_done"):
        return {"closed_at": at if e.to_state == "closed" else None}
    if name == "withdraw":
        return {"withdrawn_reason": e.reason}
    if name == "reopen":
        again = Reopening(e.actor, at, str(p["lookback_round_id"]), e.reason or "")
        return {
            "immediate": False,  # reopened: a regular rectification from now on
            "reopenings": (*item.reopenings, again),
            "closed_at": None,
            "submission": None,
            "verification": None,
        }
    if name == "reopen_parent":
        return {"closed_at": None}
    return {}


def _children(e: Event) -> list[dict[str, Any]]:
    return [c for c in _seq(e.payload.get("children")) if isinstance(c, dict)]


def _create_children(state: RoundState, e: Event, parent: Item) -> None:
    ids = []
    for c in _children(e):
        child = Item(
            id=str(c["id"]),
            unit_id=parent.unit_id,
            description=str(c["description"]),
            state=str(e.from_state),
            found_at=_when(e),
            category=str(c.get("category") or parent.category),
            source=parent.source,
            common=parent.common,
            concerns_head=parent.concerns_head,
            parent_id=parent.id,
            claimed_by=parent.claimed_by,
            fed_back_at=parent.fed_back_at,
        )
        state.put("items", child)
        ids.append(child.id)
    unit = state.units[parent.unit_id]
    state.put("units", attrs.evolve(unit, item_ids=(*unit.item_ids, *ids)))


def _unit_changes(e: Event, unit: Unit, name: str) -> dict[str, Any]:
    p, at = e.payload, _when(e)
    if name == "deliver_feedback":
        return {"feedback_on": _d(p["delivered_on"]), "feedback_mode": str(p.get("mode"))}
    if name == "approve_plan":
        return {"plan_approved_at": at, "rectifying_since": at}
    if name == "reopen":
        return {"rectifying_since": at}
    if name == "report_rectification":
        return {"rectification_reported_at": at}
    if name == "publish":
        return {"published": (bool(p.get("in_party")), bool(p.get("public")))}
    if name == "evaluate":
        return {"score": Decimal(str(p["score"])), "grade": str(p["grade"])}
    if name == "order_second_rectification":
        return {"second_rectifications": unit.second_rectifications + 1, "rectifying_since": at}
    if name == "daily_report":
        return {"daily_reports": (*unit.daily_reports, date.fromisoformat(str(p["day"])))}
    if name == "report_missing":
        return {"missing_reports": (*unit.missing_reports, date.fromisoformat(str(p["day"])))}
    return {}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _round_changes(e: Event, rnd: Round, name: str) -> dict[str, Any]:
    p = e.payload
    if name in ("start_rectification", "reopen"):
        return {"rectify_since": _when(e), "reopenings": rnd.reopenings + (name == "reopen")}
    if name == "publish_bulletin":
        return {"bulletins": (*rnd.bulletins, _monday(date.fromisoformat(str(p["week_of"]))))}
    if name == "bulletin_missing":
        week = date.fromisoformat(str(p["week_of"]))
        return {"missing_bulletins": (*rnd.missing_bulletins, week)}
    return {}


def _open_deadline(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    due = date.fromisoformat(str(p["due"]))
    earliest = p.get("earliest_at")
    state.put(
        "deadlines",
        Deadline(
            id=e.subject,
            rule=str(p["rule"]),
            subject_kind=str(p["subject_kind"]),
            subject=str(p["subject"]),
            state=e.to_state,
            start_at=datetime.fromisoformat(str(p["start_at"])),
            due=due,
            due_at=datetime.fromisoformat(str(p["due_at"])),
            original_due=due,
            ladder=_opt(p.get("ladder")),
            earliest_at=datetime.fromisoformat(str(earliest)) if earliest else None,
        ),
    )


def _raise_recommendation(state: RoundState, e: Event, _: Any) -> None:
    p = e.payload
    state.put(
        "recommendations",
        Recommendation(
            id=e.subject,
            deadline_id=str(p["deadline"]),
            rung=str(p["rung"]),
            recommends=str(p["recommends"]),
            state=e.to_state,
            raised_at=_when(e),
            subject_kind=str(p.get("subject_kind") or ""),
            subject=str(p.get("subject") or ""),
        ),
    )


def _deadline_changes(e: Event, dl: Deadline, name: str) -> dict[str, Any]:
    p, at = e.payload, _when(e)
    if name == "pause":
        return {"paused_at": at}
    if name == "resume":
        assert dl.paused_at is not None
        shift = timedelta(days=math.ceil((at - dl.paused_at) / timedelta(days=1)))
        return {"paused_at": None, "due": dl.due + shift, "due_at": dl.due_at + shift}
    if name == "extend":
        due = date.fromisoformat(str(p["due"]))
        ext = Extension(e.actor, at, dl.due, due, e.reason or "")
        return {
            "due": due,
            "due_at": dl.due_at + (due - dl.due),
            "extensions": (*dl.extensions, ext),
            "generation": dl.generation + 1,
        }
    if name == "escalate":
        firing = Firing(
            str(p["rung"]),
            str(p["kind"]),
            at,
            str(p.get("outcome") or "fired"),
            int(str(p.get("generation") or 1)),
        )
        return {"fired": (*dl.fired, firing)}
    if name in ("meet", "cancel"):
        return {"closed_at": at, "paused_at": None}
    return {}


def _recommendation_changes(e: Event, name: str) -> dict[str, Any]:
    if name in ("confirm", "dismiss"):
        return {"decided_by": e.actor, "decided_at": _when(e), "reason": e.reason}
    return {}


def _measure_changes(e: Event, name: str) -> dict[str, Any]:
    p = e.payload
    if name == "revise":
        changes: dict[str, Any] = {}
        for key in ("text", "responsible_leader", "responsible_person"):
            if key in p:
                changes[key] = _opt(p[key])
        if "due_date" in p:
            changes["due_date"] = _d(p["due_date"])
        return changes
    if name == "report_progress":
        return {"progress": int(str(p["percent"])), "notes": str(p.get("notes") or "")}
    if name == "complete":
        return {"progress": 100, "done_on": _d(p["done_on"])}
    return {}


def _lead_changes(e: Event, name: str) -> dict[str, Any]:
    p = e.payload
    if name == "conclude":
        return {"result": str(p["result"]), "notes": str(p.get("notes") or "")}
    if name == "report_back":
        return {"reported_on": _d(p["reported_on"])}
    if name == "reconcile":
        return {"reconciled_at": _when(e)}
    return {}


_CREATE: dict[str, _Effect] = {
    "round": _open_round,
    "unit": _add_unit,
    "item": _record_item,
    "measure": _add_measure,
    "lead": _transfer_lead,
    "deadline": _open_deadline,
    "recommendation": _raise_recommendation,
}


def current(state: RoundState, kind: str, subject: str) -> Any:
    """The current record of a subject, or None."""
    if kind == "round":
        return state.round if state.round is not None and state.round.id == subject else None
    table: dict[str, Any] = getattr(state, _TABLE[kind])
    return table.get(subject)


def apply_event(state: RoundState, event: Event, definitions: Mapping[str, Definition]) -> None:
    """Fold ``event`` into ``state``. Raises :class:`LogCorrupted` when the event
    does not fit the state (wrong version, broken link, wrong source state)."""

    def bad(message: str) -> LogCorrupted:
        return LogCorrupted(message, stream=state.stream, version=event.version)

    if event.stream != state.stream or event.version != state.version + 1:
        raise bad(
            f"event {event.id} is version {event.version} of {event.stream!r}; "
            f"expected version {state.version + 1} of {state.stream!r}"
        )
    if event.prev_hash != state.head:
        raise bad(f"event {event.id} does not link to the previous event")
    kind = event.kind
    definition = definitions.get(kind)
    if definition is None:
        raise bad(f"event {event.id}: unknown subject kind {kind!r}")
    try:
        name = definition.event_by_value(event.event).name
        definition.state_by_value(event.to_state)
    except KeyError as exc:
        raise bad(f"event {event.id} ({event.type}) is not in {definition!r}") from exc
    record = current(state, kind, event.subject)
    if event.from_state is None:
        if record is not None or (kind != "round" and state.round is None):
            raise bad(f"event {event.id} creates {kind} {event.subject} twice")
        _CREATE[kind](state, event, None)
    else:
        if record is None or record.state != event.from_state:
            seen = None if record is None else record.state
            raise bad(
                f"event {event.id} moves {kind} {event.subject} from {event.from_state!r}, "
                f"but it is {seen!r}"
            )
        if kind == "round":
            changes = _round_changes(event, record, name)
            state.set("round", attrs.evolve(record, state=event.to_state, **changes))
        else:
            if kind == "item":
                changes = _item_changes(state, event, record, name)
            elif kind == "unit":
                changes = _unit_changes(event, record, name)
            elif kind == "measure":
                changes = _measure_changes(event, name)
            elif kind == "lead":
                changes = _lead_changes(event, name)
            elif kind == "deadline":
                changes = _deadline_changes(event, record, name)
            else:
                changes = _recommendation_changes(event, name)
            # a refinement may have replaced the unit record; the subject's own
            # record is re-read so no change is lost
            fresh = current(state, kind, event.subject)
            state.put(
                _TABLE[kind],
                attrs.evolve(fresh, state=event.to_state, **changes),
            )
    span = state.commands.get(event.command_id)
    state.note_command(event.command_id, (span[0] if span else event.version, event.version))
    state.set("version", event.version)
    state.set("head", event.hash)
    state.set("at", event.timestamp)


# -- follow-ups ----------------------------------------------------------------------
def follow_ups(state: RoundState, event: Event, name: str) -> list[FollowUp]:
    """Automatic transitions caused by ``event`` (identifier ``name``), in order."""
    kind, subject = event.kind, event.subject
    out: list[FollowUp] = []
    if kind == "round" and name == "launch":
        out += [("unit", u.id, "enter") for u in state.units.values() if u.state == "scheduled"]
    elif kind == "round" and name == "archive":
        out += [("unit", u.id, "archive") for u in state.units.values() if u.state == "evaluated"]
    elif kind == "unit":
        step = {
            "deliver_feedback": ("confirmed", "feed_back"),
            "submit_plan": ("claimed", "plan"),
            "return_plan": ("planned", "unplan"),
            "approve_plan": ("planned", "start"),
        }
        if name in step:
            source, auto = step[name]
            out += [("item", i.id, auto) for i in state.leaves(subject) if i.state == source]
        elif name in ("order_second_rectification", "reopen"):
            rnd = state.round
            if rnd is not None and rnd.state in ("publish", "evaluate", "closed"):
                out.append(("round", rnd.id, "reopen"))
    elif kind == "measure" and name == "add":
        # a measure added before the unit's plan is approved is part of the plan the
        # approval reviews; one added after waits for the reviewing body (approve)
        unit = state.units[state.items[state.measures[subject].item_id].unit_id]
        if unit.plan_approved_at is None:
            out.append(("measure", subject, "include"))
    elif kind == "item":
        item = state.items[subject]
        parent = state.items.get(item.parent_id) if item.parent_id else None
        if (
            name in ("close", "withdraw", "children_done")
            and parent is not None
            and (
                parent.state == "refined"
                and all(state.items[c].state in ("closed", "withdrawn") for c in parent.children)
            )
        ):
            out.append(("item", parent.id, "children_done"))
        if name in ("reopen", "reopen_parent"):
            if parent is not None and parent.state == "closed":
                out.append(("item", parent.id, "reopen_parent"))
            unit = state.units[item.unit_id]
            if unit.state in ("rectification_reported", "published", "evaluated"):
                out.append(("unit", unit.id, "reopen"))
    return out
