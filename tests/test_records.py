"""The pydantic records at the edge carry every field of the engine's attrs records,
so nothing the engine knows is lost on the way out (or into a snapshot)."""

from __future__ import annotations

import attrs
import pytest
from pydantic import BaseModel

from xuncha_flow import _model, _records

PAIRS = [
    (_model.Round, _records.RoundRecord),
    (_model.Unit, _records.UnitRecord),
    (_model.Item, _records.ItemRecord),
    (_model.Measure, _records.MeasureRecord),
    (_model.Lead, _records.LeadRecord),
    (_model.Deadline, _records.DeadlineRecord),
    (_model.Recommendation, _records.RecommendationRecord),
    (_model.Submission, _records.SubmissionRecord),
    (_model.Verification, _records.VerificationRecord),
    (_model.Rejection, _records.RejectionRecord),
    (_model.Reopening, _records.ReopeningRecord),
    (_model.MilestoneState, _records.MilestoneRecord),
    (_model.Extension, _records.ExtensionRecord),
    (_model.Firing, _records.FiringRecord),
]


@pytest.mark.parametrize(("internal", "edge"), PAIRS, ids=lambda c: c.__name__)
def test_every_attrs_field_has_a_record_field_with_the_same_default(
    internal: type, edge: type[BaseModel]
) -> None:
    fields = {f.name: f for f in attrs.fields(internal)}
    assert set(fields) == set(edge.model_fields)
    for name, field in fields.items():
        if field.default is not attrs.NOTHING:
            default = edge.model_fields[name].default
            if name == "definitions":  # pairs inside, a mapping outside
                assert dict(field.default) == default
            else:
                assert default == field.default, name
