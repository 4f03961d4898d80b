"""A test kit for hosts and for xuncha_flow's own tests.

* :class:`Cast` — one actor for every role, with the organizations a unit's
  inspected organization and inspection team act for;
* :class:`RoundDriver` — fires events on one round choosing, for each event, an
  actor the definition allows (the unit's own organization for rectification, its
  team for inspection, the policy's verifier for checks), so a test or simulation
  says *what* happens and the driver supplies *who*;
* :class:`~xuncha_flow.ManualClock` — re-exported, to move time by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from pydantic import BaseModel

from ._clock import ManualClock
from ._commands import SubjectKind
from ._effects import current
from ._engine import Engine
from ._errors import GuardRejected, PermissionDenied
from ._events import Event
from ._roles import Actor, Role
from ._rules import LEAD_ROLE

__all__ = ["Cast", "ManualClock", "RoundDriver"]

_PREFERENCE = (
    Role.INSPECTED_ORGANIZATION,
    Role.INSPECTION_TEAM,
    Role.SUPERVISION_OFFICE,
    Role.INSPECTION_OFFICE,
    Role.SECRETARY_MEETING,
    Role.LEADING_GROUP,
    Role.DISCIPLINE_COMMISSION,
    Role.ORGANIZATION_DEPARTMENT,
    Role.FUNCTIONAL_DEPARTMENT,
)


_OFFICE = Actor(id="xcb-staff", role=Role.INSPECTION_OFFICE, organization="xcb")
_LEADING_GROUP = Actor(id="lg-chair", role=Role.LEADING_GROUP, organization="xc-lg")
_SECRETARY = Actor(id="secretary", role=Role.SECRETARY_MEETING, organization="party-committee")
_SUPERVISION = Actor(id="jdb-staff", role=Role.SUPERVISION_OFFICE, organization="jdb")
_DISCIPLINE = Actor(id="jw-staff", role=Role.DISCIPLINE_COMMISSION, organization="jw")
_ORGANIZATION_DEPT = Actor(id="zzb-staff", role=Role.ORGANIZATION_DEPARTMENT, organization="zzb")


@attrs.frozen
class Cast:
    """Actors for every role. Organizations of the standing bodies are fixed ids;
    units and teams get theirs from the round."""

    office: Actor = _OFFICE
    leading_group: Actor = _LEADING_GROUP
    secretary: Actor = _SECRETARY
    supervision: Actor = _SUPERVISION
    discipline: Actor = _DISCIPLINE
    organization_dept: Actor = _ORGANIZATION_DEPT

    def team(self, team_id: str) -> Actor:
        return Actor(id=f"{team_id}-leader", role=Role.INSPECTION_TEAM, organization=team_id)

    def unit(self, organization_id: str) -> Actor:
        return Actor(
            id=f"{organization_id}-secretary",
            role=Role.INSPECTED_ORGANIZATION,
            organization=organization_id,
        )

    def functional(self, organization_id: str) -> Actor:
        return Actor(
            id=f"{organization_id}-staff",
            role=Role.FUNCTIONAL_DEPARTMENT,
            organization=organization_id,
        )

    def standing(self, role: Role) -> Actor | None:
        """The actor of a standing body (not a unit, team or functional department)."""
        for actor in (
            self.office,
            self.leading_group,
            self.secretary,
            self.supervision,
            self.discipline,
            self.organization_dept,
        ):
            if actor.role is role:
                return actor
        return None


class RoundDriver:
    """Fires events on one round with a suitable actor for each."""

    def __init__(
        self, engine: Engine, round_id: str, cast: Cast | None = None, *, prefix: str = ""
    ) -> None:
        self.engine = engine
        self.round_id = round_id
        self.cast = cast or Cast()
        self.prefix = prefix or f"{round_id}:cmd"
        """Command ids are ``<prefix>:<n>``: give drivers sharing a log distinct prefixes."""
        self._n = 0

    def _command_id(self) -> str:
        self._n += 1
        return f"{self.prefix}:{self._n}"

    def actor_for(self, kind: SubjectKind, subject: str, event: str, payload: Any = None) -> Actor:
        """An actor allowed to fire ``event`` on the subject, preferring the unit itself,
        then its team, then the verifier, the office and the leading bodies."""
        return next(iter(self.candidates(kind, subject, event, payload)), self.cast.office)

    def candidates(
        self, kind: SubjectKind, subject: str, event: str, payload: Any = None
    ) -> list[Actor]:
        """Every actor whose role may fire ``event`` on the subject, in the order of
        preference of :meth:`actor_for`."""
        state = self.engine.state(self.round_id) if kind != "round" or event != "open" else None
        process = self.engine.process if state is None else self.engine.process_of(self.round_id)
        definition = process.definition(kind)
        if event == definition.data.create.event:
            roles = definition.data.create.roles
        else:
            assert state is not None
            record = current(state, kind, subject)
            source = definition.state_by_value(record.state).name if record is not None else ""
            specs = definition.candidates(event, source)
            roles = specs[0].roles if specs else frozenset()
        unit = self._unit_of(kind, subject, payload)
        found: list[Actor] = []
        for role in _PREFERENCE:
            if role not in roles:
                continue
            if role is Role.INSPECTED_ORGANIZATION and unit is not None:
                found.append(self.cast.unit(unit[0]))
            elif role is Role.INSPECTION_TEAM and unit is not None and unit[1]:
                found.append(self.cast.team(unit[1]))
            elif role in LEAD_ROLE.values() and kind == "lead" and state is not None:
                lead = state.leads[subject]
                if LEAD_ROLE[lead.receiver] is role:
                    found.append(
                        Actor(
                            id=f"{lead.receiver_org}-staff",
                            role=role,
                            organization=lead.receiver_org,
                        )
                    )
            elif (standing := self.cast.standing(role)) is not None:
                found.append(standing)
        return found

    def _unit_of(self, kind: str, subject: str, payload: Any) -> tuple[str, str | None] | None:
        if kind == "round":
            return None
        state = self.engine.state(self.round_id)
        data = payload.model_dump() if isinstance(payload, BaseModel) else dict(payload or {})
        unit_id: str | None = None
        if kind == "unit":
            unit_id = subject if subject in state.units else None
        elif kind == "item":
            item = state.items.get(subject)
            unit_id = item.unit_id if item is not None else data.get("unit_id")
        elif kind == "measure":
            measure = state.measures.get(subject)
            item_id = measure.item_id if measure is not None else data.get("item_id")
            item = state.items.get(str(item_id))
            unit_id = item.unit_id if item is not None else None
        if unit_id is None or unit_id not in state.units:
            return None
        unit = state.units[unit_id]
        return unit.organization_id, unit.team_id

    def do(
        self,
        kind: SubjectKind,
        subject: str,
        event: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        actor: Actor | None = None,
        reason: str | None = None,
        attachments: Sequence[str] = (),
    ) -> tuple[Event, ...]:
        """Fire ``event`` on the subject, as ``actor`` or as a suitable one: the first
        of :meth:`candidates` whose command the engine would accept (the rules may
        want a particular body, e.g. a plan changed after approval is the reviewer's)."""
        who = actor or self._suitable(kind, subject, event, payload, reason, attachments)
        return self.engine.fire(
            who,
            self.round_id,
            kind,
            subject,
            event,
            payload,
            reason=reason,
            attachments=attachments,
            command_id=self._command_id(),
        )

    def _suitable(
        self,
        kind: SubjectKind,
        subject: str,
        event: str,
        payload: BaseModel | Mapping[str, Any] | None,
        reason: str | None,
        attachments: Sequence[str],
    ) -> Actor:
        found = self.candidates(kind, subject, event, payload)
        if len(found) < 2:
            return found[0] if found else self.cast.office
        data = (
            payload.model_dump(mode="json", exclude_unset=True)
            if isinstance(payload, BaseModel)
            else dict(payload or {})
        )
        for who in found:
            try:
                self.engine.preview(
                    {
                        "command_id": f"{self.prefix}:preview",
                        "round_id": self.round_id,
                        "kind": kind,
                        "subject": subject,
                        "event": event,
                        "actor": who,
                        "payload": data,
                        "reason": reason,
                        "attachments": tuple(attachments),
                    }
                )
            except (PermissionDenied, GuardRejected):
                continue
            return who
        return found[0]  # none would do: let the first show why

    def round(
        self, event: str, payload: BaseModel | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[Event, ...]:
        """Fire a round-level event."""
        return self.do("round", self.round_id, event, payload, **kwargs)
