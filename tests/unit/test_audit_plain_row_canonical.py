"""canonical_text_of_plain_row and row_hasher: canonical_json's bytes, hash_canonical's digest.

The verifier renders rows read as plain driver values (JSON as text) with
these; a difference would report intact rows as edited, or the reverse.  So
for generated rows the text must equal ``canonical_json`` of the row as the
drivers give it (JSON parsed by ``json.loads``), and anything that is not a
plain value must be refused (None), never rendered another way.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    canonical_text_of_plain_row,
    format_timestamp,
    hash_canonical,
    row_hasher,
)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=15,
)
JSON_SPELLINGS = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": "), "ensure_ascii": True},
        {"indent": 2, "sort_keys": True},
    ]
)


@st.composite
def plain_rows(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any]]:
    """A row as plain values (JSON as text) and the same row as the Core way reads it."""
    read = {
        "id": draw(st.uuids()),
        "seq": draw(st.integers(min_value=1, max_value=2**63 - 1)),
        "created_at": draw(
            st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
        ).replace(tzinfo=UTC),
        "actor": draw(TEXT),
        "user_id": draw(st.none() | st.uuids()),
        "action": draw(TEXT),
        "resource_type": draw(TEXT),
        "resource_id": draw(OPTIONAL_TEXT),
        "status": draw(TEXT),
        "changes": draw(st.none() | JSON_VALUES),
        "metadata": draw(st.none() | JSON_VALUES),
        "error_message": draw(OPTIONAL_TEXT),
        "duration_ms": draw(st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        "ip_address": draw(OPTIONAL_TEXT),
        "user_agent": draw(OPTIONAL_TEXT),
    }
    plain = [read[name] for name in HASHED_FIELDS]
    for name in ("changes", "metadata"):
        if read[name] is not None:
            plain[HASHED_FIELDS.index(name)] = json.dumps(read[name], **draw(JSON_SPELLINGS))
            read[name] = json.loads(plain[HASHED_FIELDS.index(name)])  # as a driver parses it
    return plain, read


def _render(plain: list[Any], read: dict[str, Any]) -> str | None:
    user_id = read["user_id"]
    return canonical_text_of_plain_row(
        plain,
        str(read["id"]),
        format_timestamp(read["created_at"]),
        None if user_id is None else str(user_id),
    )


@settings(max_examples=400, deadline=None)
@given(plain_rows())
def test_plain_rows_render_as_canonical_json(row: tuple[list[Any], dict[str, Any]]) -> None:
    plain, read = row
    assert _render(plain, read) == canonical_json(read).decode("utf-8")


@settings(max_examples=100, deadline=None)
@given(plain_rows(), st.sampled_from([None, "", "k", "clé ✓"]), st.text(max_size=64))
def test_row_hasher_is_hash_canonical(
    row: tuple[list[Any], dict[str, Any]], key: str | None, prev_hash: str
) -> None:
    plain, read = row
    canonical = _render(plain, read)
    assert canonical is not None
    for prev in (GENESIS_HASH, prev_hash):
        expected = hash_canonical(prev, canonical.encode("utf-8"), key)
        assert row_hasher(key)(prev, canonical) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seq", True),  # a bool is spelled true, not 1
        ("seq", "5"),
        ("seq", 5.0),
        ("duration_ms", False),
        ("duration_ms", 1.5),
        ("duration_ms", "slow"),
        ("actor", 42),
        ("status", b"success"),
        ("user_agent", 4.5),
        ("changes", "{not json"),
        ("changes", "[NaN]"),  # json.loads reads it, the encoder refuses it
        ("metadata", '{"big": 1e400}'),
        ("metadata", "[" * 100_000 + "]" * 100_000),
        ("metadata", 17),
    ],
)
def test_values_that_are_not_plain_are_refused(name: str, value: Any) -> None:
    read = {name: None for name in HASHED_FIELDS}
    read.update(id=uuid.uuid4(), seq=1, created_at=datetime(2026, 1, 1, tzinfo=UTC), actor="a")
    read.update(action="x.y", resource_type="user", status="success")
    plain = [read[field] for field in HASHED_FIELDS]
    plain[HASHED_FIELDS.index(name)] = value
    assert _render(plain, read) is None


@pytest.mark.parametrize("text", [' {"a": 1} ', '{"a":1}\n', "\ufeff{}", '{"b":2,"a":1}', "1.50"])
def test_json_text_is_read_as_json_loads_reads_it(text: str) -> None:
    read = {name: None for name in HASHED_FIELDS}
    read.update(id=uuid.uuid4(), seq=3, created_at=datetime(2026, 1, 1, tzinfo=UTC), actor="a")
    read.update(action="x.y", resource_type="user", status="success")
    plain = [read[field] for field in HASHED_FIELDS]
    plain[HASHED_FIELDS.index("changes")] = text
    try:
        read["changes"] = json.loads(text)
    except ValueError:
        assert _render(plain, read) is None
    else:
        assert _render(plain, read) == canonical_json(read).decode("utf-8")
