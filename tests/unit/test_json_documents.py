"""`input_documents.parse_json` / `decode_json`: every way a JSON text cannot be read is
one `JsonRefused` with its reason (docs/architecture.md §5.2), whoever parses it.

Each command that reads JSON (import, identity and plan files, batch lines) adds its
own prefix; the hostile-input tests try them through the installed vutf.
"""

from __future__ import annotations

import pytest

from vutf_cli.input_documents import (
    MAX_NESTING,
    NUMBER_TOO_LONG,
    JsonRefused,
    decode_json,
    parse_json,
)


@pytest.mark.parametrize(
    ("text", "reason", "where"),
    [
        ('{"a": 1,\n "b": }', "Expecting value", ":2:7"),
        ('{"a": 1} {"b": 2}', "Extra data", ":1:10"),
        ('{"a": 1, "a": 2}', "the key 'a' appears twice in one object", ""),
        ('{"outer": {"k": [1], "k": [2]}}', "the key 'k' appears twice in one object", ""),
        ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_NESTING} levels", ""),
        ('{"n": ' + "9" * 5000 + "}", NUMBER_TOO_LONG, ""),
    ],
    ids=["syntax", "extra-data", "repeated-key", "repeated-nested-key", "deep", "long-number"],
)
def test_every_unreadable_json_text_is_one_refusal_with_its_reason(
    text: str, reason: str, where: str
) -> None:
    with pytest.raises(JsonRefused) as caught:
        parse_json(text)
    assert (caught.value.reason, caught.value.where) == (reason, where)


def test_a_value_read_in_place_gives_where_it_ends_and_positions_in_the_whole_text() -> None:
    text = '[{"a": 1},\n {"b": 2}]'
    assert decode_json(text, 1) == ({"a": 1}, 9)
    assert decode_json(text, 12) == ({"b": 2}, 20)
    with pytest.raises(JsonRefused) as caught:
        decode_json('[{"a": 1},\n {"b" 2}]', 12)
    assert (caught.value.reason, caught.value.where) == ("Expecting ':' delimiter", ":2:7")


def test_readable_json_is_read_as_json_loads_reads_it() -> None:
    text = ' {"a": [1, 2.5, "x", null, true], "b": {"c": "\\u00eb"}} \n'
    assert parse_json(text) == {"a": [1, 2.5, "x", None, True], "b": {"c": "ë"}}


def test_a_stored_value_is_read_as_json_has_it_a_repeated_key_its_last() -> None:
    """Stored values (db.types.read_stored_json) are read back as they are."""
    assert parse_json('{"a": 1, "a": 2}', allow_repeated_keys=True) == {"a": 2}
    with pytest.raises(JsonRefused) as caught:
        parse_json('{"n": ' + "9" * 5000 + "}", allow_repeated_keys=True)
    assert caught.value.reason == NUMBER_TOO_LONG
