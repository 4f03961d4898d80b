"""A process: the five definitions of a round's subjects, compiled, with their guards.

:meth:`Process.standard` builds the built-in process for a role policy. A host may
build its own from data with :meth:`Process.from_data` (guards by name from a
registry it controls); the engine pins the definition versions of a round when it
is opened and records the version on every event.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from ._builtin import builtin_definitions
from ._deadlines import Calendars, DeadlinePolicy
from ._definition import Definition, DefinitionData
from ._errors import InvalidDefinition
from ._machine import CompiledMachine, Guard
from ._payloads import PAYLOADS, Empty
from ._roles import RolePolicy
from ._rules import GUARDS

__all__ = ["KINDS", "Process"]

KINDS = ("round", "unit", "item", "measure", "lead", "deadline", "recommendation")


class Process:
    """The definitions of one process version, compiled onto ``transitions``."""

    def __init__(
        self,
        definitions: Mapping[str, Definition],
        *,
        policy: RolePolicy,
        guards: Mapping[str, Guard] | None = None,
        deadlines: DeadlinePolicy | None = None,
        calendars: Calendars | None = None,
    ) -> None:
        missing = [k for k in KINDS if k not in definitions]
        if missing:
            raise InvalidDefinition("process", [f"no definition for {', '.join(missing)}"])
        wrong = [k for k, d in definitions.items() if d.kind != k]
        if wrong:
            raise InvalidDefinition("process", [f"definition kind mismatch for {', '.join(wrong)}"])
        self.policy = policy
        self.guards: Mapping[str, Guard] = dict(guards if guards is not None else GUARDS)
        self.definitions: dict[str, Definition] = {k: definitions[k] for k in KINDS}
        self.machines = {k: CompiledMachine(d, self.guards) for k, d in self.definitions.items()}
        self.deadlines = deadlines if deadlines is not None else DeadlinePolicy.none()
        self.calendars = calendars if calendars is not None else Calendars()
        self._check_deadlines()

    def _check_deadlines(self) -> None:
        known = {f"{kind}.{e.stored}" for kind, d in self.definitions.items() for e in d.events}
        problems = [
            f"deadline rule {rule.name!r} names unknown event type {etype!r}"
            for rule in self.deadlines.rules
            for etype in (*rule.anchors, *rule.met_by, *rule.cancelled_by)
            if etype not in known
        ]
        if problems:
            raise InvalidDefinition(self.deadlines.name, problems)

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, DefinitionData | Mapping[str, Any]],
        *,
        policy: RolePolicy | None = None,
        guards: Mapping[str, Guard] | None = None,
        deadlines: DeadlinePolicy | None = None,
        calendars: Calendars | None = None,
    ) -> Process:
        """Build and check definitions from data (never evaluates code)."""
        registry = dict(guards if guards is not None else GUARDS)
        built = {k: Definition.build(v, guards=registry) for k, v in data.items()}
        return cls(
            built,
            policy=policy or RolePolicy.supervision_office(),
            guards=registry,
            deadlines=deadlines,
            calendars=calendars,
        )

    @classmethod
    def standard(
        cls,
        policy: RolePolicy | None = None,
        *,
        deadlines: DeadlinePolicy | None = None,
        calendars: Calendars | None = None,
    ) -> Process:
        """The built-in process (DOMAIN.md §3–4) for ``policy`` (监督办 verifies by
        default), with the deadline policy ``deadlines`` (none by default; see
        :meth:`DeadlinePolicy.standard` and the other presets)."""
        policy = policy or RolePolicy.supervision_office()
        return cls.from_data(
            builtin_definitions(policy), policy=policy, deadlines=deadlines, calendars=calendars
        )

    def definition(self, kind: str) -> Definition:
        return self.definitions[kind]

    @cached_property
    def version_ids(self) -> dict[str, str]:
        """Subject kind → definition version id, as pinned on a round; the deadline
        policy is pinned under ``"deadlines"``."""
        ids = {k: d.version_id for k, d in self.definitions.items()}
        ids["deadlines"] = self.deadlines.version_id
        return ids

    @staticmethod
    def payload_model(kind: str, event: str) -> type[BaseModel]:
        return PAYLOADS.get((kind, event), Empty)

    def __repr__(self) -> str:
        return f"<Process {self.policy.name} {sorted(self.version_ids.values())}>"
