"""Unit tests for vutf_cli.security.audit_chain (canonical JSON and row hashes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    compute_row_hash,
    format_timestamp,
    jsonable,
)

ROW_ID = uuid.UUID("0b6f7c1e-7a35-4f43-9a55-2f7d1d8f9a10")
USER_ID = uuid.UUID("4a1f0c2e-1111-4222-8333-944455556666")


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": ROW_ID,
        "seq": 1,
        "created_at": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "actor": "cli:alice",
        "user_id": USER_ID,
        "action": "user.create",
        "resource_type": "user",
        "resource_id": str(USER_ID),
        "status": "success",
        "changes": {"username": {"old": None, "new": "bob"}, "email": {"new": "b@x.org"}},
        "metadata": {"host": "h1", "vutf_version": "0.1.0", "argv": ["user", "create"]},
        "error_message": None,
        "duration_ms": 12,
        "ip_address": None,
        "user_agent": "vutf/0.1.0",
    }
    row.update(overrides)
    return row


def test_constants() -> None:
    assert GENESIS_HASH == "0" * 64
    assert len(HASHED_FIELDS) == len(set(HASHED_FIELDS)) == 15
    assert "prev_hash" not in HASHED_FIELDS
    assert "row_hash" not in HASHED_FIELDS


def test_canonical_json_format() -> None:
    out = canonical_json(_row())
    text = out.decode("utf-8")
    parsed = json.loads(text)
    assert list(parsed) == sorted(HASHED_FIELDS)
    assert list(parsed["changes"]) == ["email", "username"], "nested keys sorted too"
    assert parsed["id"] == str(ROW_ID)
    assert parsed["user_id"] == str(USER_ID)
    assert parsed["created_at"] == "2024-05-01T12:00:00.123456Z"
    # Compact separators (no value here contains ", " or ": ").
    assert ", " not in text
    assert ": " not in text


def test_canonical_json_is_stable_under_key_reordering() -> None:
    row = _row()
    reordered = dict(reversed(list(row.items())))
    reordered["changes"] = dict(reversed(list(row["changes"].items())))
    assert canonical_json(reordered) == canonical_json(row)


def test_extra_fields_are_ignored_and_missing_fields_are_null() -> None:
    row = _row()
    with_extras = {**row, "prev_hash": "f" * 64, "row_hash": "e" * 64, "_sa_state": object()}
    assert canonical_json(with_extras) == canonical_json(row)

    partial = {"id": ROW_ID, "seq": 1}
    explicit_nulls = {name: None for name in HASHED_FIELDS} | partial
    assert canonical_json(partial) == canonical_json(explicit_nulls)


def test_non_ascii_is_kept_as_utf8() -> None:
    out = canonical_json(_row(actor="cli:jos\u00e9"))
    assert "jos\u00e9".encode() in out
    assert b"\\u00e9" not in out


def test_uuid_object_and_string_hash_the_same() -> None:
    # PostgreSQL returns uuid.UUID, SQLite returns the 36-character text.
    assert canonical_json(_row(id=ROW_ID)) == canonical_json(_row(id=str(ROW_ID)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "2024-05-01T12:00:00.000000Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 5), "2024-05-01T12:00:00.000005Z"),
        (
            datetime(2024, 5, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T12:00:00.000001Z",
        ),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000000Z"),
    ],
)
def test_format_timestamp(value: datetime, expected: str) -> None:
    assert format_timestamp(value) == expected


def test_naive_aware_and_offset_datetimes_hash_the_same() -> None:
    aware = datetime(2024, 5, 1, 12, 0, 0, 42, tzinfo=UTC)
    naive = aware.replace(tzinfo=None)
    shifted = aware.astimezone(timezone(timedelta(hours=-5)))
    hashes = {compute_row_hash(GENESIS_HASH, _row(created_at=v)) for v in (aware, naive, shifted)}
    assert len(hashes) == 1


def test_datetime_inside_json_is_canonicalized() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = _row(changes={"expires_at": {"old": None, "new": when}, "ids": [USER_ID, (1, 2)]})
    parsed = json.loads(canonical_json(row))
    assert parsed["changes"]["expires_at"]["new"] == "2024-01-02T03:04:05.000000Z"
    assert parsed["changes"]["ids"] == [str(USER_ID), [1, 2]]


def test_round_trip_through_json_storage_gives_same_hash() -> None:
    """What a writer stores via jsonable() and reads back hashes identically."""
    row = _row(
        changes={"when": datetime(2024, 1, 2, tzinfo=UTC), "who": USER_ID, "d": date(2024, 1, 2)}
    )
    stored = {
        **row,
        # jsonb/text storage: serialized, then parsed back with other key order.
        "changes": json.loads(json.dumps(jsonable(row["changes"]), sort_keys=False)),
        "metadata": dict(reversed(list(json.loads(json.dumps(row["metadata"])).items()))),
        "id": str(row["id"]),
        "user_id": str(row["user_id"]),
        "created_at": row["created_at"].replace(tzinfo=None),
    }
    assert compute_row_hash(GENESIS_HASH, stored) == compute_row_hash(GENESIS_HASH, row)


@pytest.mark.parametrize(
    "bad",
    [{1, 2}, b"bytes", {1: "int key"}, object()],
)
def test_unsupported_values_raise_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json(_row(changes={"x": bad}))


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON"):
        canonical_json(_row(duration_ms=float("nan")))


def test_compute_row_hash_is_sha256_of_prev_plus_canonical() -> None:
    row = _row()
    expected = hashlib.sha256(GENESIS_HASH.encode() + canonical_json(row)).hexdigest()
    assert compute_row_hash(GENESIS_HASH, row) == expected
    assert len(expected) == 64


def test_compute_row_hash_with_key_is_hmac() -> None:
    row = _row()
    expected = hmac.new(
        b"audit-key", GENESIS_HASH.encode() + canonical_json(row), hashlib.sha256
    ).hexdigest()
    assert compute_row_hash(GENESIS_HASH, row, key="audit-key") == expected
    assert compute_row_hash(GENESIS_HASH, row, key="audit-key") != compute_row_hash(
        GENESIS_HASH, row
    )
    assert compute_row_hash(GENESIS_HASH, row, key="") == compute_row_hash(GENESIS_HASH, row)


def test_hash_depends_on_prev_hash_and_every_field() -> None:
    base = compute_row_hash(GENESIS_HASH, _row())
    assert compute_row_hash("1" * 64, _row()) != base
    changed_values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "seq": 2,
        "created_at": datetime(2024, 5, 1, 12, 0, 0, 123457, tzinfo=UTC),
        "actor": "cli:mallory",
        "user_id": None,
        "action": "user.delete",
        "resource_type": "api_key",
        "resource_id": "other",
        "status": "failure",
        "changes": {},
        "metadata": {"host": "h2"},
        "error_message": "boom",
        "duration_ms": 13,
        "ip_address": "10.0.0.1",
        "user_agent": "other",
    }
    assert set(changed_values) == set(HASHED_FIELDS)
    for name, value in changed_values.items():
        assert compute_row_hash(GENESIS_HASH, _row(**{name: value})) != base, name


def test_chain_detects_tampering_in_the_middle() -> None:
    rows = [_row(seq=i, id=uuid.uuid4(), duration_ms=i) for i in range(1, 6)]
    prev = GENESIS_HASH
    links: list[tuple[str, str]] = []
    for row in rows:
        row_hash = compute_row_hash(prev, row)
        links.append((prev, row_hash))
        prev = row_hash

    def verify(chain_rows: list[dict[str, Any]]) -> int | None:
        prev = GENESIS_HASH
        for index, (row, (stored_prev, stored_hash)) in enumerate(
            zip(chain_rows, links, strict=True)
        ):
            if stored_prev != prev or compute_row_hash(prev, row) != stored_hash:
                return index
            prev = stored_hash
        return None

    assert verify(rows) is None
    tampered = [dict(r) for r in rows]
    tampered[2]["status"] = "failure"
    assert verify(tampered) == 2


# PostgreSQL text cannot hold lone surrogates (nor can UTF-8), so none here.
utf8_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | utf8_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(utf8_text, children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(utf8_text, json_values, max_size=6))
def test_canonical_json_survives_json_round_trip(changes: dict[str, Any]) -> None:
    row = _row(changes=changes)
    reread = _row(changes=json.loads(json.dumps(changes, ensure_ascii=True)))
    assert canonical_json(reread) == canonical_json(row)
    assert json.loads(canonical_json(row))["changes"] == changes
