"""Outcome figures every report needs (DOMAIN.md §4), computed from state.

Counting rules, stated once:

* **problems found** — problems recorded by the teams (refinement children are not
  new problems; they are counted as items to rectify);
* **problems fed back** — recorded problems that were fed back to their unit;
* **immediate fixes** (立行立改) — problems ordered fixed on site and closed;
* **items** — leaf items: a refined problem is represented by its children
  ("17 problems refined into 42" gives 42 items);
* **completion rate** — closed items / items in scope, where withdrawn items (not
  substantiated) are out of scope; long-term items stay in scope and are shown
  apart (基本完成、持续整改). ``None`` when no item is in scope.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ._model import Item, RoundState

__all__ = ["OutcomeFigures", "UnitFigures", "outcome_figures"]


class _Figures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    items: int
    """Leaf items (refined problems counted by their children)."""
    closed: int
    long_term: int
    withdrawn: int
    open: int
    """Items in scope that are neither closed nor long-term."""
    completion_rate: float | None
    """closed / (items - withdrawn)."""


class UnitFigures(_Figures):
    unit_id: str
    name: str
    state: str


class OutcomeFigures(_Figures):
    round_id: str
    problems_found: int
    problems_fed_back: int
    immediate_fixes: int
    leads_transferred: int
    leads_reconciled: int
    economic_losses_recovered: Decimal
    """In yuan (挽回经济损失)."""
    rules_established: int
    people_held_accountable: int
    units: tuple[UnitFigures, ...]


def _counts(leaves: list[Item]) -> dict[str, int | float | None]:
    closed = sum(1 for i in leaves if i.state == "closed")
    long_term = sum(1 for i in leaves if i.state == "long_term")
    withdrawn = sum(1 for i in leaves if i.state == "withdrawn")
    scope = len(leaves) - withdrawn
    return {
        "items": len(leaves),
        "closed": closed,
        "long_term": long_term,
        "withdrawn": withdrawn,
        "open": scope - closed - long_term,
        "completion_rate": closed / scope if scope else None,
    }


def outcome_figures(state: RoundState) -> OutcomeFigures:
    """The round's outcome figures at its current version."""
    if state.round is None:
        raise ValueError(f"round {state.stream!r} has not been opened")
    items = list(state.items.values())
    leaves = [i for i in items if not i.children]
    problems = [i for i in items if i.parent_id is None]
    units = tuple(
        UnitFigures(unit_id=u.id, name=u.name, state=u.state, **_counts(list(state.leaves(u.id))))
        for u in state.units.values()
    )
    return OutcomeFigures(
        round_id=state.round.id,
        problems_found=len(problems),
        problems_fed_back=sum(1 for i in problems if i.fed_back_at is not None),
        immediate_fixes=sum(1 for i in leaves if i.immediate and i.state == "closed"),
        leads_transferred=len(state.leads),
        leads_reconciled=sum(1 for le in state.leads.values() if le.reconciled_at is not None),
        economic_losses_recovered=sum((i.amount_recovered for i in leaves), Decimal(0)),
        rules_established=sum(len(i.rules_established) for i in leaves),
        people_held_accountable=sum(i.people_held_accountable for i in leaves),
        units=units,
        **_counts(leaves),
    )
