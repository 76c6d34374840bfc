"""Finishing PostgreSQL's row_to_json lines: exact text, or the row left to Python.

The byte-for-byte promise itself is proven end to end, on both backends, by
``tests/cli/test_audit_export_identity.py``; these pin the line rules on
text shaped as ``row_to_json`` writes it (top level compact, ``jsonb``
spaced, the time in PostgreSQL's spelling).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vutf_cli.errors import InternalError
from vutf_cli.services.audit_export_lines import finish_postgres_line, seq_of_line

ID = "0779f2bb-5b65-4e3e-a362-cc53740f6d90"


def _line(*, created_at: str | None = "2025-05-06T07:08:09.123456+00:00", **fields: Any) -> bytes:
    """A row as row_to_json writes it: ``jsonb`` values given as their (spaced) text."""
    top = {"id": ID, "seq": 42, "created_at": created_at, "actor": "ops", **fields}
    top.setdefault("changes", None)
    parts = []
    for name, value in top.items():
        text = value if name in ("changes", "metadata") and value is not None else None
        parts.append(f'"{name}":{text if text is not None else json.dumps(value)}')
    return ("{" + ",".join(parts) + ',"error_message":null}\n').encode()


def test_a_plain_line_is_compacted_and_its_time_respelled() -> None:
    line = _line(changes='{"a": 1, "b": "x, y", "c": {"d": null}}', metadata='{"host": "h"}')
    finished = finish_postgres_line(line)
    assert (
        finished
        == (
            '{"id":"' + ID + '","seq":42,"created_at":"2025-05-06T07:08:09.123456Z","actor":"ops",'
            '"changes":{"a":1,"b":"x, y","c":{"d":null}},"metadata":{"host":"h"},'
            '"error_message":null}\n'
        ).encode()
    )


@pytest.mark.parametrize(
    ("spelled", "vutf"),
    [
        ("2025-05-06T07:08:09.1+00:00", "2025-05-06T07:08:09.100000Z"),
        ("2025-05-06T07:08:09.12345+00:00", "2025-05-06T07:08:09.123450Z"),
        ("2025-05-06T07:08:09+00:00", "2025-05-06T07:08:09.000000Z"),
        ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00.000000Z"),
    ],
)
def test_a_shortened_fraction_gets_six_digits(spelled: str, vutf: str) -> None:
    finished = finish_postgres_line(_line(created_at=spelled))
    assert isinstance(finished, bytes)
    assert f'"created_at":"{vutf}"'.encode() in finished


@pytest.mark.parametrize(
    "fields",
    [
        {"changes": '{"v": "a, "}'},  # ends with ", ": the compaction would eat its space
        {"changes": None, "metadata": '"x, "'},  # at the very end of the jsonb part
        {"changes": '"y, "'},
        {"changes": '{"v": ": a"}'},  # starts with ": "
        {"changes": '{": k": 1}'},
        {"changes": '{"k": [": a"]}'},
        {"changes": '{"k": 0.00001}'},  # Python prints 1e-05
        {"changes": '{"k": 1.50}'},  # Python prints 1.5
        {"changes": '{"k": [0.00001]}'},  # an array's only element
        {"changes": '{"k": [[-2.50]], "s": "x"}'},
        {"changes": '{"k": [0.5, "a"]}'},  # its first, before strings
        {"changes": '{"k": [1, 2]}'},
        {"changes": '{"k": "say \\"hi\\", ok"}'},
    ],
)
def test_lines_the_replacements_could_misread_are_left_to_python(fields: dict[str, Any]) -> None:
    line = _line(**fields)
    finished = finish_postgres_line(line)
    assert isinstance(finished, dict)
    expected = json.loads(line)
    expected["created_at"] = "2025-05-06T07:08:09.123456Z"
    assert finished == expected


@pytest.mark.parametrize("text", ["y, ", ": x", "a, b", '", "', "[1, 2]", "0.5"])
def test_only_the_jsonb_values_are_compacted(text: str) -> None:
    """row_to_json writes the other columns compact: their strings are left as they are."""
    quoted = text.replace('"', "'")  # a line with a backslash goes to Python anyway
    line = _line(actor=quoted, resource_id=quoted, changes=None, metadata='{"host": "h, i"}')
    finished = finish_postgres_line(line)
    assert isinstance(finished, bytes)
    expected = json.loads(line)
    expected["created_at"] = "2025-05-06T07:08:09.123456Z"
    assert json.loads(finished) == expected
    assert finished == line.replace(b"+00:00", b"Z").replace(b'{"host": ', b'{"host":')


def test_a_time_python_cannot_hold_is_an_error_naming_the_seq() -> None:
    with pytest.raises(InternalError, match="audit entry 42: created_at is outside"):
        finish_postgres_line(_line(created_at=None))


def test_seq_of_line() -> None:
    assert seq_of_line(_line()) == 42
