"""Commands: what a caller asks the engine to do.

A command names the round (its stream), the subject (kind and id), the event to
fire, the actor, and a payload checked against the event's payload model. It also
carries why (``reason``) and evidence references (``attachments``: the library
stores file ids, never files). ``command_id`` makes a command idempotent: sending
the same command twice applies it once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from ._errors import InvalidCommand
from ._roles import Actor

__all__ = ["Command", "SubjectKind", "parse_command"]

SubjectKind = Literal["round", "unit", "item", "measure", "lead", "deadline", "recommendation"]


class Command(BaseModel):
    """A request to fire ``event`` on a subject of a round."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    command_id: str = Field(min_length=1, max_length=128)
    round_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")
    kind: SubjectKind
    subject: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")
    event: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    actor: Actor
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=4000)
    attachments: tuple[str, ...] = Field(default=(), max_length=1000)


def parse_command(data: str | bytes | Mapping[str, Any] | Command) -> Command:
    """Parse a command from JSON text or a mapping; raise :class:`InvalidCommand`."""
    if isinstance(data, Command):
        return data
    try:
        if isinstance(data, str | bytes):
            return Command.model_validate_json(data)
        if not isinstance(data, Mapping):
            raise InvalidCommand(f"a command is JSON text or a mapping, not {type(data).__name__}")
        return Command.model_validate(dict(data))
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise InvalidCommand(f"invalid command: {_summary(exc)}", errors) from exc
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
    ) as exc:  # pragma: no cover - pydantic wraps these
        raise InvalidCommand(f"invalid command: {exc}") from exc


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
    )
