"""The public API: what ``xuncha_flow`` exports, pinned, and its type marker."""

from __future__ import annotations

import importlib.resources
import inspect
from pathlib import Path

import xuncha_flow
import xuncha_flow.payloads
import xuncha_flow.testing

PUBLIC = [
    "Actor",
    "AfterContext",
    "AlreadyExists",
    "BUILTIN_TOPICS",
    "BeforeContext",
    "Calendar",
    "CalendarDays",
    "CalendarError",
    "Calendars",
    "ChainReport",
    "Checkpoint",
    "CheckpointInvalid",
    "Checkpoints",
    "ChinaWorkingDays",
    "Clock",
    "ClockBehind",
    "Command",
    "CommandRefused",
    "ConcurrencyConflict",
    "DEFAULT_TIMEZONE",
    "DeadlinePolicy",
    "DeadlineRecord",
    "DeadlineRule",
    "Definition",
    "DefinitionData",
    "DeliveryReport",
    "DueEntry",
    "DuplicateKey",
    "Duration",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Engine",
    "Event",
    "EventLog",
    "EventSpec",
    "Finding",
    "GuardRejected",
    "HASH_ALGORITHMS",
    "HmacKey",
    "HolidaySchedule",
    "HookFailed",
    "Hooks",
    "InMemoryEventLog",
    "InMemorySnapshotStore",
    "InvalidArgument",
    "InvalidCommand",
    "InvalidDefinition",
    "ItemRecord",
    "Ladder",
    "LeadRecord",
    "LimitExceeded",
    "LogCorrupted",
    "LogReport",
    "ManualClock",
    "MeasureRecord",
    "Message",
    "Months",
    "NotFound",
    "OutcomeFigures",
    "PermissionDenied",
    "Plan",
    "Process",
    "RecommendationRecord",
    "Role",
    "RolePolicy",
    "RoundRecord",
    "RoundSnapshot",
    "RoundState",
    "RuleViolation",
    "Rung",
    "SWEEPER",
    "ScheduleError",
    "SchemaMismatch",
    "SeparationOfDuties",
    "Signer",
    "Snapshot",
    "SnapshotStore",
    "StateSpec",
    "StoreError",
    "SweepReport",
    "SystemClock",
    "TransitionNotAllowed",
    "TransitionSpec",
    "UnitFigures",
    "UnitRecord",
    "UnknownProcess",
    "Verifier",
    "Vetoed",
    "WorkingDayCalendar",
    "XunchaError",
    "YearNotCovered",
    "genesis_hash",
    "json_schemas",
    "make_checkpoints",
    "mermaid",
    "normalize_id",
    "outcome_figures",
    "parse_command",
    "replay",
    "same_organization",
    "snapshot",
    "verify_chain",
]


def test_all_is_pinned() -> None:
    assert sorted(xuncha_flow.__all__) == PUBLIC
    assert len(set(xuncha_flow.__all__)) == len(xuncha_flow.__all__)


def test_every_exported_name_exists() -> None:
    missing = [name for name in xuncha_flow.__all__ if not hasattr(xuncha_flow, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from xuncha_flow import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(xuncha_flow.__all__)


def test_exports_come_from_the_package() -> None:
    for name in xuncha_flow.__all__:
        obj = getattr(xuncha_flow, name)
        module = inspect.getmodule(obj)
        if module is not None and (inspect.isclass(obj) or inspect.isfunction(obj)):
            assert module.__name__.startswith("xuncha_flow."), name


def test_errors_derive_from_the_base_error() -> None:
    errors = {
        n
        for n in xuncha_flow.__all__
        if inspect.isclass(getattr(xuncha_flow, n))
        and issubclass(getattr(xuncha_flow, n), Exception)
    }
    assert errors >= {
        "AlreadyExists",
        "CalendarError",
        "ConcurrencyConflict",
        "GuardRejected",
        "HookFailed",
        "CommandRefused",
        "DuplicateKey",
        "InvalidArgument",
        "InvalidCommand",
        "LimitExceeded",
        "LogCorrupted",
        "SchemaMismatch",
        "StoreError",
        "UnknownProcess",
        "InvalidDefinition",
        "NotFound",
        "PermissionDenied",
        "SeparationOfDuties",
        "TransitionNotAllowed",
        "Vetoed",
        "XunchaError",
    }
    assert all(issubclass(getattr(xuncha_flow, e), xuncha_flow.XunchaError) for e in errors)


def test_payloads_and_testing_modules_export_what_they_list() -> None:
    for module in (xuncha_flow.payloads, xuncha_flow.testing):
        names = module.__all__
        assert names, module.__name__
        assert [n for n in names if not hasattr(module, n)] == []
    assert "PAYLOADS" in xuncha_flow.payloads.__all__
    assert set(xuncha_flow.testing.__all__) == {"Cast", "ManualClock", "RoundDriver"}


def test_py_typed_ships() -> None:
    marker = Path(xuncha_flow.__file__).parent / "py.typed"
    assert marker.is_file()
    assert importlib.resources.files("xuncha_flow").joinpath("py.typed").is_file()
