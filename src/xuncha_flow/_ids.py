"""Identifiers: one character set for every id a command carries.

An id (of a round, unit, item, measure, lead, organization, team or person) is,
after Unicode NFKC normalization (full-width ``Ｕ－１`` is ``U-1``), 1 to
:data:`~xuncha_flow._limits.MAX_ID_LENGTH` characters: letters of any script
(Chinese included) and digits, and ``-``, ``_``, ``.``; it starts with a letter or a
digit. So no whitespace, no control or invisible characters, and none of the
characters the engine composes ids with: ``:`` and ``#`` (deadlines,
``rule:subject#n``), ``@`` (recommendations, ``deadline@rung#n``) and ``/``. A
command id may also contain ``:``.

Ids keep their case. Organizations are *compared* after :func:`normalize_id`
(NFKC, case folding, invisible characters and whitespace removed), so ``ORG-1``,
``org-1`` and ``ｏｒｇ－１`` are one organization. Ids of organizations starting with
``xuncha_flow`` (after that normalization) are reserved for the engine's own
identity (its sweeps act as ``xuncha_flow.sweep``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Final

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ._limits import MAX_COMMAND_ID_LENGTH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH

__all__ = [
    "ID_PATTERN",
    "RESERVED_PREFIX",
    "CommandId",
    "Ident",
    "OrgId",
    "SubjectId",
    "check_id",
    "invisible",
    "is_reserved",
    "nfkc",
    "normalize_id",
]

ID_PATTERN: Final = r"^[\p{L}\p{N}][\p{L}\p{N}._-]*$"
"""The id character set as a (JSON Schema, ECMA-262 ``u``) pattern, after NFKC."""
RESERVED_PREFIX: Final = "xuncha_flow"
"""Organization and actor ids starting with this (after :func:`normalize_id`) are the
engine's own."""

_PUNCTUATION = frozenset("-_.")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_IGNORABLE = frozenset(
    [
        "\u034f",  # combining grapheme joiner
        "\u115f",  # Hangul fillers: letters that show nothing
        "\u1160",
        "\u3164",
        "\uffa0",
        "\u17b4",  # Khmer inherent vowels
        "\u17b5",
        *(chr(c) for c in range(0x180B, 0x1810)),  # Mongolian variation selectors
        *(chr(c) for c in range(0xFE00, 0xFE10)),  # variation selectors
        *(chr(c) for c in range(0xE0100, 0xE01F0)),
    ]
)


def invisible(ch: str) -> bool:
    """Whether ``ch`` shows nothing: whitespace, a control, format (Unicode category
    Cf, e.g. U+200B zero-width space, U+FEFF) or surrogate character, or another
    default-ignorable one (variation selectors, Hangul fillers)."""
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _IGNORABLE


def nfkc(value: object) -> object:
    """NFKC-normalize a string (anything else is left to the type check)."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def normalize_id(value: str) -> str:
    """The form ids are compared in: NFKC, case folded, without invisible characters
    or whitespace. Idempotent: ``normalize_id(normalize_id(x)) == normalize_id(x)``."""
    text = value
    for _ in range(8):  # NFKC and case folding settle after one or two rounds
        again = "".join(
            ch for ch in unicodedata.normalize("NFKC", text).casefold() if not invisible(ch)
        )
        if again == text:
            break
        text = again
    return text


def is_reserved(value: str) -> bool:
    """Whether ``value`` is in the engine's own namespace (:data:`RESERVED_PREFIX`)."""
    return normalize_id(value).startswith(RESERVED_PREFIX)


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    shown = repr(ch) if not invisible(ch) else "an invisible character"
    return f"{shown} (U+{ord(ch):04X}{' ' + name if name else ''})"


def check_id(value: str, extra: str = "") -> str | None:
    """What is wrong with ``value`` as an id (allowing the characters ``extra`` too),
    or None."""
    if not value:
        return "an id is not empty"
    first = value[0]
    if unicodedata.category(first)[0] not in "LN" or first in _IGNORABLE:
        return f"an id starts with a letter or a digit, not {_describe(first)}"
    for ch in value[1:]:
        if ch in _IGNORABLE or (
            unicodedata.category(ch)[0] not in "LN" and ch not in _PUNCTUATION and ch not in extra
        ):
            allowed = "letters, digits, '-', '_', '.'" + "".join(f", {c!r}" for c in extra)
            return f"an id has only {allowed}; not {_describe(ch)}"
    return None


def _checker(extra: str = "") -> AfterValidator:
    def check(value: str) -> str:
        problem = check_id(value, extra)
        if problem is not None:
            raise PydanticCustomError("id_invalid", "{problem}", {"problem": problem})
        return value

    return AfterValidator(check)


def _not_reserved(value: str) -> str:
    if is_reserved(value):
        raise PydanticCustomError(
            "id_reserved",
            "ids starting with '{prefix}' are the engine's own",
            {"prefix": RESERVED_PREFIX},
        )
    return value


Ident = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, json_schema_extra={"pattern": ID_PATTERN}),
    BeforeValidator(nfkc),
    _checker(),
]
"""An id: see the module's docstring."""

OrgId = Annotated[Ident, AfterValidator(_not_reserved)]
"""The id of an organization (a unit's, a team's, a lead's receiver): an id outside
the engine's reserved namespace."""

CommandId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_COMMAND_ID_LENGTH,
        json_schema_extra={"pattern": r"^[\p{L}\p{N}][\p{L}\p{N}._:-]*$"},
    ),
    BeforeValidator(nfkc),
    _checker(":"),
]
"""A command id: the id characters and ``:``."""

SubjectId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_SUBJECT_LENGTH,
        json_schema_extra={"pattern": r"^[\p{L}\p{N}][\p{L}\p{N}._:#@-]*$"},
    ),
    BeforeValidator(nfkc),
    _checker(":#@"),
]
"""The subject of a command: an id, or for a deadline or a recommendation the id the
engine composed (with ``:``, ``#``, ``@``). :class:`~xuncha_flow.Command` checks
which by the subject's kind."""
