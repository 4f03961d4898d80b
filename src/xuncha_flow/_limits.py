"""Every limit on what a command may carry, in one place.

A command over any of these is refused with :class:`~xuncha_flow.LimitExceeded`
before anything changes (``errors`` names the field, type ``"too_long"``); a date
outside the window is refused with :class:`~xuncha_flow.InvalidCommand`. Lengths
count characters after Unicode NFKC normalization; the size of a whole command
counts the bytes of its UTF-8 JSON text. The docs list these from this module
(``docs/generate.py``), so each constant's docstring says what it caps.
"""

from __future__ import annotations

from typing import Final

MAX_ID_LENGTH: Final = 64
"""An id: of a round, unit, item, measure, lead, organization, team or person."""

MAX_COMMAND_ID_LENGTH: Final = 128
"""A command id (the id characters, plus ``:``)."""

MAX_SUBJECT_LENGTH: Final = 256
"""The subject of a command on a deadline or a recommendation: ids the engine
composes from a rule, a subject, a rung and counters (``rule:subject#n``,
``deadline@rung#n``)."""

MAX_NAME_LENGTH: Final = 200
"""A one-line text: a name, title, theme, category, level, head, milestone, rule
established, exemption."""

MAX_TEXT_LENGTH: Final = 4000
"""A text of several lines: a description, summary, note, measure, a command's reason."""

MAX_BULLETIN_LENGTH: Final = 20000
"""The text of a weekly bulletin (周通报)."""

MAX_ATTACHMENTS: Final = 100
"""Evidence references (attachments) on one command."""

MAX_ATTACHMENT_LENGTH: Final = 512
"""One evidence reference (a file id or URI: the library stores references, not files)."""

MAX_CHILDREN: Final = 100
"""Child items of one refinement (细化)."""

MAX_MILESTONES: Final = 50
"""Milestones of one long-term item (长期整改)."""

MAX_LEAD_ITEMS: Final = 500
"""Items one lead (问题线索) names; they are unique."""

MAX_ENTRIES: Final = 100
"""Entries of a list of texts: rules established, publication exemptions."""

MAX_LOOKBACK_ROUNDS: Final = 20
"""Rounds a look-back round (回头看) looks back on."""

MAX_COUNT: Final = 100_000
"""A count reported by a unit (people held accountable); counts are never negative."""

MAX_YUAN_DIGITS: Final = 18
"""Digits of an amount in yuan, two of them after the point (under 10^16 yuan);
amounts are never negative."""

MAX_COMMAND_BYTES: Final = 256 * 1024
"""A whole command as UTF-8 JSON text, checked before it is parsed (JSON text) or
decided (a mapping or a :class:`~xuncha_flow.Command`)."""

DATES_BEFORE_ROUND_YEARS: Final = 1
"""No date in a command lies more than this many years before the round was
opened (before today, for the command that opens it)."""

DATES_AFTER_TODAY_YEARS: Final = 10
"""No date in a command lies more than this many years after today; a date of
something that happened (delivered, done, transferred, reported) is not after today."""
