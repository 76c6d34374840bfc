"""RowTemplate and canonical_value_texts write the very texts of the one canonical text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from vutf_cli.security.audit_chain import (
    RowTemplate,
    canonical_row_text,
    canonical_value_text,
    canonical_value_texts,
    format_timestamp,
)

VARYING = ("id", "seq", "created_at", "user_id", "resource_id")
SHARED: dict[str, Any] = {
    "actor": 'ops "night" \\ shift é',
    "action": "user.create",
    "resource_type": "user",
    "status": "success",
    "error_message": None,
    "duration_ms": None,
    "ip_address": None,
    "user_agent": None,
}
ODD_TEXT = ["", "tab\tnew\nline", "back\\slash", "\\N", "王小明", "emoji \U0001f600", "\u2028", '"']


@pytest.mark.parametrize("metadata", [None, {"host": "h", "audit_key": None, "ü": ["x", 1.5]}])
@pytest.mark.parametrize("changes", [None, {"full_name": "José", "is_active": True, "n": 0}])
@pytest.mark.parametrize("text", ODD_TEXT)
def test_the_template_equals_the_one_canonical_text(
    metadata: dict[str, Any] | None, changes: dict[str, Any] | None, text: str
) -> None:
    metadata_text = canonical_value_text(metadata)
    changes_text = canonical_value_text(changes)
    template = RowTemplate({**SHARED, "actor": text or "x"}, metadata_text, VARYING)
    user = str(uuid.uuid4())
    values = (
        str(uuid.uuid4()),
        2**53 + 1,
        format_timestamp(datetime(1, 1, 1, tzinfo=UTC)),
        user,
        text,
    )

    expected = canonical_row_text(
        {**SHARED, "actor": text or "x", **dict(zip(VARYING, values, strict=True))},
        changes_text,
        metadata_text,
    )

    assert template.text(values, changes_text) == expected


def test_every_field_may_vary_or_be_shared() -> None:
    scalars = {**SHARED, "id": "i", "seq": 7, "created_at": "t", "user_id": None}
    scalars["resource_id"] = "r"
    for name in scalars:
        shared = {key: value for key, value in scalars.items() if key != name}
        template = RowTemplate(shared, "{}", (name,))
        assert template.text((scalars[name],), "[]") == canonical_row_text(scalars, "[]", "{}")


def test_a_template_refuses_what_is_not_a_json_scalar() -> None:
    with pytest.raises(ValueError, match="not scalar"):
        RowTemplate(SHARED, None, ("changes",))
    with pytest.raises(TypeError):
        RowTemplate({**SHARED, "actor": b"bytes"}, None, VARYING)
    template = RowTemplate(SHARED, None, VARYING)
    with pytest.raises(TypeError):
        template.text((uuid.uuid4(), 1, "t", None, None), None)
    with pytest.raises(ValueError, match=r"NaN|Out of range"):
        RowTemplate(SHARED, None, ("duration_ms",)).text((float("nan"),), None)


VALUES: list[Any] = [
    None,
    {"b": 1, "a": [1, 2, {"z": None}]},
    'x,"y",',
    '","',
    1.5,
    -0.0,
    2**80,
    [],
    {},
    {"é": "王", "\u2028": "\U0001f600"},
    "\\",
    True,
]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 500])
def test_the_batch_texts_are_the_single_texts(count: int) -> None:
    values = [VALUES[number % len(VALUES)] for number in range(count)]
    assert canonical_value_texts(values) == [canonical_value_text(value) for value in values]


def test_a_batch_holding_something_json_cannot_carry_is_refused() -> None:
    with pytest.raises(TypeError):
        canonical_value_texts([{"a": 1}, {"b": uuid.uuid4()}])
    with pytest.raises(ValueError, match="Out of range"):
        canonical_value_texts([1.0, float("inf")])
