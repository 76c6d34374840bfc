"""The output formats are listed once, each drawn by its own renderer.

* ``vutf_cli.output_formats`` names every format and its renderer; settings,
  the Terminal and the renderers agree with it, and an unknown name is the
  same one-line error wherever it is given.
* ``-o json`` streams an array that is byte for byte ``json.dumps(rows,
  indent=2)`` of the converted rows, and ``-o jsonl`` lines are the compact
  ``json.dumps`` of each row (both after the terminal-safety escapes).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vutf_cli.errors import InvalidInput
from vutf_cli.output import OUTPUT_FORMATS, Column, Terminal
from vutf_cli.output.renderer import Renderer, renderer_for
from vutf_cli.output.serialize import to_jsonable
from vutf_cli.output_formats import DEFAULT_OUTPUT_FORMAT, RENDERERS
from vutf_cli.settings import Settings, load_settings

# What -o json / jsonl escape beyond json.dumps(ensure_ascii=False): DEL, C1
# controls, bidi controls, JS line separators (see vutf_cli.output.serialize).
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def test_the_registry_lists_the_formats_in_help_order() -> None:
    assert OUTPUT_FORMATS == tuple(RENDERERS) == ("table", "wide", "json", "jsonl", "csv", "yaml")
    assert DEFAULT_OUTPUT_FORMAT in OUTPUT_FORMATS
    assert Settings().output == DEFAULT_OUTPUT_FORMAT


@pytest.mark.parametrize("name", OUTPUT_FORMATS)
def test_every_format_has_its_renderer(name: str) -> None:
    renderer = renderer_for(name)
    assert isinstance(renderer, Renderer)
    assert renderer_for(name) is renderer
    assert Terminal(output_format=name).output_format == name
    # Programs read json, jsonl and yaml: their errors are JSON too.
    assert renderer.errors_as_json == (name in ("json", "jsonl", "yaml"))


@pytest.mark.parametrize("name", ["xml", "JSON", "", "table "])
def test_an_unknown_format_is_the_same_error_everywhere(name: str) -> None:
    with pytest.raises(InvalidInput) as from_terminal:
        Terminal(output_format=name)
    with pytest.raises(InvalidInput) as from_settings:
        load_settings({"output": name})
    for raised in (from_terminal.value, from_settings.value):
        assert raised.message == f"unknown output format {name!r}"
        assert raised.hint == "use one of: table, wide, json, jsonl, csv, yaml"


ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.text(alphabet=st.sampled_from('a\x00\x1b\x7f\x85\u2028\u202e\u2066é"\\/')),
    st.datetimes(timezones=ZONES),
    st.datetimes(),
    st.uuids(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(), SCALARS))
KEYS = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True)


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    keys = draw(KEYS)
    rows = draw(st.lists(st.fixed_dictionaries({key: VALUES for key in keys}), max_size=4))
    # The columns give the order of the fields.
    return keys, [{key: row[key] for key in keys} for row in rows]


def _emit(output_format: str, keys: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    terminal = Terminal(output_format=output_format, stdout=out, stderr=io.StringIO())
    assert terminal.emit_rows(iter(rows), columns=[Column(key) for key in keys]) == len(rows)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(listing=listings())
def test_json_array_is_json_dumps_of_the_whole_list(
    listing: tuple[list[str], list[dict[str, Any]]],
) -> None:
    keys, rows = listing
    expected = json.dumps(to_jsonable(rows), ensure_ascii=False, indent=2)
    assert _emit("json", keys, rows) == _escaped(expected) + "\n"


@settings(max_examples=150, deadline=None)
@given(listing=listings())
def test_json_lines_are_compact_json_dumps_of_each_row(
    listing: tuple[list[str], list[dict[str, Any]]],
) -> None:
    keys, rows = listing
    expected = "".join(
        _escaped(json.dumps(to_jsonable(row), ensure_ascii=False, separators=(",", ":"))) + "\n"
        for row in rows
    )
    assert _emit("jsonl", keys, rows) == expected


def test_an_object_with_non_string_keys_is_converted_whole() -> None:
    out = io.StringIO()
    Terminal(output_format="json", stdout=out).emit_object({"ids": {uuid.UUID(int=1): 1}})
    assert (
        out.getvalue() == '{\n  "ids": {\n    "00000000-0000-0000-0000-000000000001": 1\n  }\n}\n'
    )
