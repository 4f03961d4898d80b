"""JSON Schema of every record, command, event and payload the library exchanges."""

from __future__ import annotations

from typing import Any

from ._commands import Command
from ._definition import DefinitionData
from ._events import Event
from ._figures import OutcomeFigures
from ._payloads import PAYLOADS
from ._records import (
    ItemRecord,
    LeadRecord,
    MeasureRecord,
    RoundRecord,
    RoundSnapshot,
    UnitRecord,
)
from ._roles import Actor

__all__ = ["json_schemas"]


def json_schemas() -> dict[str, dict[str, Any]]:
    """Name → JSON Schema. Payloads are named ``payload:<kind>.<event>``."""
    models: dict[str, Any] = {
        "Actor": Actor,
        "Command": Command,
        "Event": Event,
        "DefinitionData": DefinitionData,
        "RoundRecord": RoundRecord,
        "UnitRecord": UnitRecord,
        "ItemRecord": ItemRecord,
        "MeasureRecord": MeasureRecord,
        "LeadRecord": LeadRecord,
        "RoundSnapshot": RoundSnapshot,
        "OutcomeFigures": OutcomeFigures,
    }
    out = {name: model.model_json_schema() for name, model in models.items()}
    for (kind, event), model in sorted(PAYLOADS.items()):
        out[f"payload:{kind}.{event}"] = model.model_json_schema()
    return out
