"""Roles, actors and the role policy (DOMAIN.md §2).

Separation of duties is a rule, not a courtesy: "巡察办管巡、监督办管督、被巡察单位管改".
The organization that rectifies never verifies or closes its own item; which body
verifies is a :class:`RolePolicy`. Organizations are compared with
:func:`same_organization` (after :func:`normalize_id`), never as raw strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import attrs
from pydantic import BaseModel, ConfigDict, Field

from ._ids import Ident, is_reserved, normalize_id

__all__ = [
    "SWEEPER",
    "Actor",
    "Role",
    "RolePolicy",
    "is_engine_identity",
    "normalize_id",
    "same_organization",
]


class Role(StrEnum):
    """Who may act. Values are stable stored identifiers."""

    LEADING_GROUP = "leading_group"
    SECRETARY_MEETING = "secretary_meeting"
    INSPECTION_OFFICE = "inspection_office"
    INSPECTION_TEAM = "inspection_team"
    SUPERVISION_OFFICE = "supervision_office"
    DISCIPLINE_COMMISSION = "discipline_commission"
    ORGANIZATION_DEPARTMENT = "organization_department"
    INSPECTED_ORGANIZATION = "inspected_organization"
    FUNCTIONAL_DEPARTMENT = "functional_department"

    @property
    def label(self) -> str:
        """The Chinese name of the role."""
        return _LABELS[self]


_LABELS: dict[Role, str] = {
    Role.LEADING_GROUP: "巡察工作领导小组",
    Role.SECRETARY_MEETING: "党委书记专题会",
    Role.INSPECTION_OFFICE: "巡察办",
    Role.INSPECTION_TEAM: "巡察组",
    Role.SUPERVISION_OFFICE: "整改监督办公室",
    Role.DISCIPLINE_COMMISSION: "纪委监委",
    Role.ORGANIZATION_DEPARTMENT: "组织部",
    Role.INSPECTED_ORGANIZATION: "被巡察党组织",
    Role.FUNCTIONAL_DEPARTMENT: "职能部门",
}


class Actor(BaseModel):
    """A person acting in a role for an organization. Every command carries one."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: Ident = Field(description="person id")
    role: Role
    organization: Ident = Field(description="id of the organization the person acts for")

    def __str__(self) -> str:
        return f"{self.id}@{self.organization}"


SWEEPER = Actor(
    id="xuncha_flow.sweep", role=Role.SUPERVISION_OFFICE, organization="xuncha_flow.sweep"
)
"""The default actor of sweeps: the supervision office escalates (DOMAIN.md §2). Its
id and organization are in the engine's reserved namespace: no command may act in
its name, and no unit, team or lead receiver may be registered under it."""


def same_organization(a: str, b: str) -> bool:
    """Whether two organization ids name one organization: equal after
    :func:`normalize_id` (NFKC, case folding, invisible characters and whitespace
    removed), so ``"ORG-1"``, ``"org-1"``, ``"org\u200b-1"`` and ``"ｏｒｇ－１"`` are one."""
    return normalize_id(a) == normalize_id(b)


def is_engine_identity(actor: Actor) -> bool:
    """Whether ``actor`` claims the engine's own identity (:data:`SWEEPER`, or any id
    or organization in its reserved namespace): commands may not."""
    return is_reserved(actor.id) or is_reserved(actor.organization)


def _role_set(values: Iterable[Role | str]) -> frozenset[Role]:
    roles = frozenset(Role(v) for v in values)
    if not roles:
        raise ValueError("a role set may not be empty")
    return roles


@attrs.frozen
class RolePolicy:
    """Which bodies verify, close, reject and withdraw rectified items.

    The inspected organization can never be a verifier, an approver of extensions or
    a decider on recommendations: the body that rectifies never checks its own work.
    Presets follow DOMAIN.md §2:

    * :meth:`supervision_office` — 监督办 verifies (the "一组两办 / 巡督分离" model, the default);
    * :meth:`joint_supervision` — 巡察办 + 纪委监委 + 组织部 where there is no 监督办;
    * :meth:`three_party` — 巡察办 + 巡察组 check together with the unit [practice];
      the unit takes part in the check but the record is signed by the office or team.

    Extensions and pauses of deadlines are approved by the leading group and the
    supervision office (the 巡察办 where there is no 监督办: the last two presets);
    recommendations are decided by the leading group.
    """

    verifiers: frozenset[Role] = attrs.field(converter=_role_set)
    name: str = "custom"
    approvers: frozenset[Role] = attrs.field(
        default=frozenset({Role.LEADING_GROUP, Role.SUPERVISION_OFFICE}), converter=_role_set
    )
    """Who approves deadline extensions and pauses."""
    deciders: frozenset[Role] = attrs.field(
        default=frozenset({Role.LEADING_GROUP}), converter=_role_set
    )
    """Who confirms or dismisses the engine's recommendations (accountability, ...)."""

    def __attrs_post_init__(self) -> None:
        for what, roles in (
            ("verify or close items", self.verifiers),
            ("approve extensions", self.approvers),
            ("decide on recommendations", self.deciders),
        ):
            if Role.INSPECTED_ORGANIZATION in roles:
                raise ValueError(f"the inspected organization cannot {what} (separation of duties)")

    @classmethod
    def supervision_office(cls) -> RolePolicy:
        return cls(frozenset({Role.SUPERVISION_OFFICE}), name="supervision_office")

    @classmethod
    def joint_supervision(cls) -> RolePolicy:
        return cls(
            frozenset(
                {Role.INSPECTION_OFFICE, Role.DISCIPLINE_COMMISSION, Role.ORGANIZATION_DEPARTMENT}
            ),
            name="joint_supervision",
            approvers=frozenset({Role.LEADING_GROUP, Role.INSPECTION_OFFICE}),
        )

    @classmethod
    def three_party(cls) -> RolePolicy:
        return cls(
            frozenset({Role.INSPECTION_OFFICE, Role.INSPECTION_TEAM}),
            name="three_party",
            approvers=frozenset({Role.LEADING_GROUP, Role.INSPECTION_OFFICE}),
        )
