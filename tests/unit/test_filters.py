"""The image filter: parsed once, refused with a reason when it can't be used, rendered for
Qdrant (search) and SQL (the listing)."""

from __future__ import annotations

import pytest
from qdrant_client import models as qm

from deeplens import filters


def test_each_form_of_condition_is_understood() -> None:
    conditions = filters.parse(
        '{"uploadedBy": "alice", "contentType": ["image/png", "image/jpeg"],'
        ' "width": {"gte": 1024}, "uploadedAt": {"lt": "2026-12-01T00:00:00Z"},'
        ' "metadata.camera": "x100"}'
    )
    by_field = {c.field: c for c in conditions}
    assert by_field["uploadedBy"].equals == ("alice",)
    assert by_field["contentType"].equals == ("image/png", "image/jpeg")
    assert by_field["width"].bounds == (("gte", 1024),)
    assert by_field["uploadedAt"].bounds == (("lt", "2026-12-01T00:00:00+00:00"),)
    assert by_field["metadata.camera"].payload_key == "metadata.camera"

    must = filters.to_qdrant(conditions)
    assert isinstance(must[0].match, qm.MatchValue) and must[0].key == "uploadedBy"
    assert isinstance(must[1].match, qm.MatchAny)
    assert isinstance(must[2].range, qm.Range) and must[2].range.gte == 1024
    assert isinstance(must[3].range, qm.DatetimeRange)


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"colour": "red"}', "unknown filter field 'colour'"),
        ('{"status": "completed"}', "unknown filter field 'status'"),
        ('{"width": {"above": 3}}', "a range takes gt, gte, lt and/or lte"),
        ('{"width": {"gte": "big"}}', "give a number"),
        ('{"uploadedBy": {"gte": "a"}}', "takes a value or a list"),
        ('{"uploadedAt": {"gte": "yesterday"}}', "is not ISO 8601"),
        ('{"uploadedAt": {"lt": "2026-12-01T00:00:00"}}', "needs a time zone"),
        ('{"metadata.bad key": 1}', "metadata keys are"),
        ('{"metadata.k": {"x": 1}}', "a range takes"),
        ('{"uploadedBy": []}', "give 1 to 100 values"),
        ('{"width": 640.5}', "not a whole number"),
        ('{"metadata.x": 1.5}', "match decimals with a range"),
        ('{"metadata.x": [1, "a"]}', "strings only or whole numbers only"),
        ('{"metadata.x": [true, false]}', "strings only or whole numbers only"),
        ('{"uploadedAt": ["2026-01-01T00:00:00Z"]}', "with a range"),
    ],
)
def test_a_filter_that_cannot_be_used_is_refused_with_the_reason(raw: str, hint: str) -> None:
    with pytest.raises(filters.FilterError, match=hint):
        filters.parse(raw)


def test_the_listing_may_filter_on_status() -> None:
    (condition,) = filters.parse('{"status": ["failed", "retrying"]}', allow_status=True)
    where, params = filters.to_sql([condition])
    assert where == "status = ANY(%s)" and params == [["failed", "retrying"]]


def test_metadata_conditions_compare_json_values_in_sql() -> None:
    where, params = filters.to_sql(filters.parse('{"metadata.n": {"gt": 2}, "metadata.k": "v"}'))
    assert "(metadata ->> %s)::numeric > %s" in where
    assert "metadata -> %s = ANY(%s::jsonb[])" in where
    assert params == ["n", "n", 2, "k", ['"v"']]
