"""xuncha_flow: the Party inspection process (巡察: 巡、督、改) as executable,
verifiable state machines."""

from ._clock import DEFAULT_TIMEZONE, Clock, ManualClock, SystemClock
from ._commands import Command, parse_command
from ._definition import Definition, DefinitionData, EventSpec, StateSpec, TransitionSpec
from ._engine import Engine, Plan, replay
from ._errors import (
    AlreadyExists,
    CalendarError,
    ConcurrencyConflict,
    GuardRejected,
    HookFailed,
    IntegrityError,
    InvalidCommand,
    InvalidDefinition,
    NotFound,
    PermissionDenied,
    RuleViolation,
    SeparationOfDuties,
    TransitionNotAllowed,
    Vetoed,
    XunchaError,
)
from ._events import ChainReport, Event, genesis_hash, verify_chain
from ._figures import OutcomeFigures, UnitFigures, outcome_figures
from ._hooks import AfterContext, BeforeContext, Hooks
from ._log import EventLog, InMemoryEventLog, LogReport
from ._model import RoundState
from ._process import Process
from ._records import (
    ItemRecord,
    LeadRecord,
    MeasureRecord,
    RoundRecord,
    RoundSnapshot,
    UnitRecord,
    snapshot,
)
from ._roles import Actor, Role, RolePolicy
from ._schema import json_schemas

__all__ = [
    "DEFAULT_TIMEZONE",
    "Actor",
    "AfterContext",
    "AlreadyExists",
    "BeforeContext",
    "CalendarError",
    "ChainReport",
    "Clock",
    "Command",
    "ConcurrencyConflict",
    "Definition",
    "DefinitionData",
    "Engine",
    "Event",
    "EventLog",
    "EventSpec",
    "GuardRejected",
    "HookFailed",
    "Hooks",
    "InMemoryEventLog",
    "IntegrityError",
    "InvalidCommand",
    "InvalidDefinition",
    "ItemRecord",
    "LeadRecord",
    "LogReport",
    "ManualClock",
    "MeasureRecord",
    "NotFound",
    "OutcomeFigures",
    "PermissionDenied",
    "Plan",
    "Process",
    "Role",
    "RolePolicy",
    "RoundRecord",
    "RoundSnapshot",
    "RoundState",
    "RuleViolation",
    "SeparationOfDuties",
    "StateSpec",
    "SystemClock",
    "TransitionNotAllowed",
    "TransitionSpec",
    "UnitFigures",
    "UnitRecord",
    "Vetoed",
    "XunchaError",
    "genesis_hash",
    "json_schemas",
    "outcome_figures",
    "parse_command",
    "replay",
    "snapshot",
    "verify_chain",
]
