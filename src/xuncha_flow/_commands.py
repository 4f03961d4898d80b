"""Commands: what a caller asks the engine to do.

A command names the round (its stream), the subject (kind and id), the event to
fire, the actor, and a payload checked against the event's payload model. It also
carries why (``reason``) and evidence references (``attachments``: the library
stores file ids, never files). ``command_id`` makes a command idempotent: sending
the same command twice applies it once.

Ids follow one character set (``_ids.py``) and every part has a maximum
(``_limits.py``): a command over one, or larger than
:data:`~xuncha_flow._limits.MAX_COMMAND_BYTES` as JSON, is refused with
:class:`~xuncha_flow.LimitExceeded` before any further work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError, to_json

from ._errors import InvalidCommand, LimitExceeded
from ._ids import CommandId, Ident, SubjectId, check_id
from ._limits import MAX_ATTACHMENTS, MAX_COMMAND_BYTES, MAX_ID_LENGTH
from ._payloads import Attachment, Notes
from ._roles import Actor

__all__ = ["Command", "SubjectKind", "parse_command", "refusal"]

SubjectKind = Literal["round", "unit", "item", "measure", "lead", "deadline", "recommendation"]
_COMPOSED = frozenset({"deadline", "recommendation"})
"""Kinds whose ids the engine composes from other ids (with ``:``, ``#``, ``@``)."""


class Command(BaseModel):
    """A request to fire ``event`` on a subject of a round."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    command_id: CommandId
    round_id: Ident
    kind: SubjectKind
    subject: SubjectId
    event: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    actor: Actor
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    reason: Notes | None = None
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=MAX_ATTACHMENTS)

    @field_validator("subject")
    @classmethod
    def _subject_of_kind(cls, value: str, info: ValidationInfo) -> str:
        """A round, unit, item, measure or lead is named by an id; only the ids the
        engine composes (deadlines, recommendations) contain ``:``, ``#`` or ``@``."""
        if info.data.get("kind") in _COMPOSED:
            return value
        if len(value) > MAX_ID_LENGTH:
            raise PydanticCustomError(
                "too_long",
                "an id has at most {max_length} characters",
                {"max_length": MAX_ID_LENGTH},
            )
        problem = check_id(value)
        if problem is not None:
            raise PydanticCustomError("id_invalid", "{problem}", {"problem": problem})
        return value


_CAPS = frozenset({"too_long", "string_too_long"})
"""pydantic's error types for a string or a list over its maximum."""


def refusal(exc: ValidationError, message: str, loc: Sequence[str | int] = ()) -> InvalidCommand:
    """The refusal for input that failed validation: :class:`LimitExceeded` when any
    part is over its maximum (its errors typed ``"too_long"``), else
    :class:`InvalidCommand`. ``loc`` prefixes every error's location."""
    errors: list[dict[str, Any]] = []
    for e in exc.errors():
        kind = "too_long" if e["type"] in _CAPS else e["type"]
        errors.append({"loc": [*loc, *e["loc"]], "msg": e["msg"], "type": kind})
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors)
    cls = LimitExceeded if any(e["type"] == "too_long" for e in errors) else InvalidCommand
    return cls(f"{message}: {detail}", errors)


def _too_large(size: int) -> LimitExceeded:
    message = f"a command has at most {MAX_COMMAND_BYTES} bytes as JSON, this one {size}"
    return LimitExceeded(
        f"invalid command: {message}", [{"loc": [], "msg": message, "type": "too_long"}]
    )


def _text_size(data: str | bytes) -> int:
    if isinstance(data, bytes):
        return len(data)
    if len(data) > MAX_COMMAND_BYTES:  # each character is at least one byte
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def parse_command(data: str | bytes | Mapping[str, Any] | Command) -> Command:
    """Parse a command from JSON text or a mapping; raise :class:`InvalidCommand`
    (:class:`LimitExceeded` for one over a limit). JSON text is measured before it is
    parsed; a mapping or a :class:`Command` once validated."""
    if isinstance(data, str | bytes):
        size = _text_size(data)
        if size > MAX_COMMAND_BYTES:
            raise _too_large(size)
    try:
        if isinstance(data, Command):
            command = data
        elif isinstance(data, str | bytes):
            command = Command.model_validate_json(data)
        elif isinstance(data, Mapping):
            command = Command.model_validate(dict(data))
        else:
            raise InvalidCommand(f"a command is JSON text or a mapping, not {type(data).__name__}")
    except ValidationError as exc:
        raise refusal(exc, "invalid command") from exc
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
    ) as exc:  # pragma: no cover - pydantic wraps these
        raise InvalidCommand(f"invalid command: {exc}") from exc
    if not isinstance(data, str | bytes):
        size = len(to_json(command))
        if size > MAX_COMMAND_BYTES:
            raise _too_large(size)
    return command
