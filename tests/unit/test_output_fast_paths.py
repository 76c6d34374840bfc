"""The output package's fast paths give exactly the bytes of the general ones.

* A flat row (string keys, scalar values) is written as indented JSON without
  json's pure-Python indenting encoder; the text must be what
  ``json.dumps(to_jsonable(row), indent=2, ensure_ascii=False)`` gives (after
  the terminal-safety escapes), alone and as an element of an array.
* ``format_timestamp`` has a shortcut for UTC datetimes.
* ``inert`` matches its unsafe characters with a range pattern, which must
  cover exactly the escape table.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.output import sanitize, serialize
from vutf_cli.output.serialize import dumps, format_timestamp, json_array_item, to_jsonable

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
DATETIMES = st.one_of(
    st.datetimes(timezones=ZONES),
    st.datetimes(),  # naive: taken as UTC
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: they take the general path
    st.text(),
    st.text(alphabet=st.sampled_from('a\x00\x1b\x7f\x85\u2028\u202e\u2066é"\\/')),
    DATETIMES,
    st.uuids(),
)
ROWS = st.dictionaries(st.text(max_size=12), SCALARS, max_size=20)


def general(obj: Any) -> str:
    """The reference: json's own encoder on the converted value."""
    text = json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, allow_nan=True)
    return serialize._escape_unsafe(text)


@settings(max_examples=400, deadline=None)
@given(row=ROWS)
def test_a_flat_row_is_written_as_json_would(row: dict[str, Any]) -> None:
    assert dumps(row, indent=2) == general(row)
    assert json_array_item(row) == general(row).replace("\n", "\n  ")


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROWS, max_size=4))
def test_a_streamed_array_is_json_dumps_of_the_list(rows: list[dict[str, Any]]) -> None:
    streamed = "[]" if not rows else "[\n  " + ",\n  ".join(map(json_array_item, rows)) + "\n]"
    assert streamed == general(rows)


def test_rows_the_fast_path_does_not_handle_take_the_general_path() -> None:
    nested = {"id": uuid.UUID(int=1), "permissions": {"read": True}, "tags": ["a"]}
    assert dumps(nested, indent=2) == general(nested)
    non_string_keys = {uuid.UUID(int=2): 1}
    assert dumps(non_string_keys, indent=2) == general(non_string_keys)
    assert dumps({}, indent=2) == "{}"
    assert dumps({"x": float("nan")}, indent=2) == '{\n  "x": NaN\n}'


@given(value=DATETIMES)
def test_format_timestamp_shortcut_agrees_with_the_general_rule(value: datetime) -> None:
    utc = value if value.tzinfo is None else value.astimezone(UTC)
    expected = utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert format_timestamp(value) == expected


def test_inert_pattern_matches_exactly_the_escaped_characters() -> None:
    matched = {
        code for code in range(sys.maxunicode + 1) if re.fullmatch(sanitize._UNSAFE, chr(code))
    }
    assert matched == set(sanitize._ESCAPES)
