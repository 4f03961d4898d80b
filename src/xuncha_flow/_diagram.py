"""Diagrams and tables drawn from a definition, for the docs and for hosts.

:func:`mermaid` writes a definition as a mermaid ``stateDiagram-v2`` with our own
labels (Chinese label, then identifier); it does not use ``transitions``'
``GraphMachine``, which is slow and knows nothing of our labels, roles or flags.
The output depends on the definition alone and follows its order, so the same
definition always gives the same text.

Drawing conventions:

* each state is declared as ``state "已认领 claimed" as claimed``;
* ``[*] --> initial`` is labelled with the creation event; every terminal state
  gets ``--> [*]``;
* one arrow per (source, target) of each transition, labelled with the event's
  Chinese label and identifier; automatic transitions (fired by the engine as a
  consequence of another command) carry ``(自动)``, backward ones ``(回退)``;
* when an event has several transitions out of one state (a conditional branch),
  each of those arrows also shows its guards in brackets, ``[is_immediate]``;
* internal transitions (data changes, the state stays) draw no arrow: they are
  listed in a note beside their state (``内部事件: 报告进展 report_progress``).

:func:`states_table` and :func:`roles_table` give the same definition as markdown
tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._definition import Definition, StateSpec, TransitionSpec
from ._roles import Role

__all__ = ["mermaid", "roles_table", "states_table"]

AUTOMATIC = "自动"
BACKWARD = "回退"


def _flags(t: TransitionSpec) -> str:
    marks = [m for m, on in ((AUTOMATIC, t.automatic), (BACKWARD, t.backward)) if on]
    return f" ({', '.join(marks)})" if marks else ""


def _clean(text: str) -> str:
    """Keep a label on one mermaid line: no quotes, colons, semicolons or newlines."""
    for bad, good in (('"', "'"), (":", "："), (";", "；"), ("\n", " "), ("#", "＃")):
        text = text.replace(bad, good)
    return text


def _branches(definition: Definition) -> set[tuple[str, str]]:
    """(event, source) pairs served by more than one transition."""
    seen: dict[tuple[str, str], int] = {}
    for t in definition.transitions:
        for src in t.source:
            seen[(t.event, src)] = seen.get((t.event, src), 0) + 1
    return {k for k, n in seen.items() if n > 1}


def mermaid(definition: Definition) -> str:
    """The definition as a mermaid ``stateDiagram-v2`` (see the module docstring)."""
    d = definition
    lines = ["stateDiagram-v2", f"    %% {d.name} version {d.data.version}"]
    for s in d.states:
        lines.append(f'    state "{_clean(s.label)} {s.name}" as {s.name}')
    create = d.event(d.data.create.event)
    lines.append(f"    [*] --> {d.initial.name} : {_clean(create.label)} {create.name}")
    branches = _branches(d)
    internal: dict[str, list[str]] = {}
    for t in d.transitions:
        event = d.event(t.event)
        text = f"{_clean(event.label)} {event.name}"
        for src in t.source:
            if t.dest is None:
                names = internal.setdefault(src, [])
                if text not in names:
                    names.append(text)
                continue
            guard = f" [{', '.join(t.guards)}]" if (t.event, src) in branches and t.guards else ""
            lines.append(f"    {src} --> {t.dest} : {text}{guard}{_flags(t)}")
    for s in d.states:
        if s.terminal:
            lines.append(f"    {s.name} --> [*]")
    for s in d.states:
        if s.name in internal:
            lines.append(f"    note right of {s.name} : 内部事件 {', '.join(internal[s.name])}")
    return "\n".join(lines) + "\n"


# -- markdown tables -------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _state(s: StateSpec) -> str:
    return f"{s.label} `{s.name}`"


def _roles(roles: Iterable[Role]) -> str:
    # in the Role enum's order, which follows DOMAIN.md §2
    chosen = set(roles)
    if chosen == set(Role):
        return "every role"
    return ", ".join(f"{r.label} `{r.value}`" for r in Role if r in chosen)


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def states_table(definition: Definition) -> str:
    """A markdown table of the states: identifier, label, stored value, rank, kind."""
    rows = []
    for s in definition.states:
        role = "initial" if s.initial else ("terminal" if s.terminal else "")
        rows.append([f"`{s.name}`", s.label, f"`{s.stored}`", str(s.rank), role])
    return _table(["state", "中文", "stored value", "rank", "initial / terminal"], rows)


def _notes(t: TransitionSpec) -> str:
    notes = [
        label
        for label, on in (
            ("automatic (自动)", t.automatic),
            ("backward (回退)", t.backward),
            ("reason required", t.reason_required),
            ("independent of the organization concerned", t.independent),
        )
        if on
    ]
    return ", ".join(notes)


def _guards(guards: Iterable[str]) -> str:
    return ", ".join(f"`{g}`" for g in guards)


def roles_table(definition: Definition) -> str:
    """A markdown table of who may fire what: one row per transition (the creation
    event first), with sources, target, roles, guards and flags."""
    d = definition
    create = d.data.create
    event = d.event(create.event)
    rows = [
        [
            f"`{event.name}`",
            event.label,
            "— (creates)",
            _state(d.initial),
            _roles(create.roles),
            _guards(create.guards),
            "",
        ]
    ]
    for t in d.transitions:
        event = d.event(t.event)
        rows.append(
            [
                f"`{event.name}`",
                event.label,
                ", ".join(_state(d.state(s)) for s in t.source),
                _state(d.state(t.dest)) if t.dest is not None else "(stays: internal)",
                _roles(t.roles),
                _guards(t.guards),
                _notes(t),
            ]
        )
    return _table(["event", "中文", "from", "to", "roles", "guards", "notes"], rows)
