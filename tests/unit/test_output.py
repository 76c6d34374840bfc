"""Unit tests for vutf_cli.output: serialisation, sanitising and the Terminal."""

from __future__ import annotations

import csv
import enum
import io
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from vutf_cli.errors import InvalidInput, NotFound, SchemaOutdated
from vutf_cli.output import OUTPUT_FORMATS, Column, Terminal
from vutf_cli.output.sanitize import csv_safe, inert
from vutf_cli.output.serialize import dumps, format_timestamp, to_jsonable

REPO_ROOT = Path(__file__).resolve().parents[2]

CLEAR_SCREEN = "\x1b[2J"
OSC8_LINK = "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"


class Status(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Level(enum.IntEnum):
    LOW = 1


@dataclass(frozen=True)
class Owner:
    username: str
    since: datetime


@dataclass(frozen=True)
class UserRow:
    id: uuid.UUID
    username: str
    email: str
    is_active: bool
    status: Status
    scopes: tuple[str, ...]
    failed_logins: int
    created_at: datetime
    last_login_at: datetime | None


USER_COLUMNS = [
    Column("id", in_table=False),
    Column("username", "User"),
    Column("email"),
    Column("is_active", "Active"),
    Column("status"),
    Column("scopes"),
    Column("failed_logins", in_table=False),
    Column("created_at", "Created"),
    Column("last_login_at", in_table=False),
]


def make_user(**overrides: Any) -> UserRow:
    values: dict[str, Any] = {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "username": "alice",
        "email": "alice@example.com",
        "is_active": True,
        "status": Status.ACTIVE,
        "scopes": ("admin", "read"),
        "failed_logins": 0,
        "created_at": datetime(2026, 11, 26, 6, 10, 4, 123456, tzinfo=UTC),
        "last_login_at": None,
    }
    values.update(overrides)
    return UserRow(**values)


class FakeTTY(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Results must not depend on the developer's shell.
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def make_terminal(
    output_format: str = "table", **kwargs: Any
) -> tuple[Terminal, io.StringIO, io.StringIO]:
    out = kwargs.pop("stdout", None) or io.StringIO()
    err = kwargs.pop("stderr", None) or io.StringIO()
    return Terminal(output_format=output_format, stdout=out, stderr=err, **kwargs), out, err


# --------------------------------------------------------------------------- serialize


class TestToJsonable:
    def test_utc_timestamp_has_microseconds_and_z(self) -> None:
        value = datetime(2026, 11, 26, 6, 10, 4, 123456, tzinfo=UTC)
        assert to_jsonable(value) == "2026-11-26T06:10:04.123456Z"

    def test_timestamp_always_six_fraction_digits(self) -> None:
        assert (
            to_jsonable(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
        )

    def test_aware_timestamp_is_converted_to_utc(self) -> None:
        cet = timezone(timedelta(hours=1))
        value = datetime(2026, 11, 26, 7, 10, 4, 5, tzinfo=cet)
        assert to_jsonable(value) == "2026-11-26T06:10:04.000005Z"

    def test_naive_timestamp_is_taken_as_utc(self) -> None:
        assert to_jsonable(datetime(2026, 11, 26, 6, 10, 4)) == "2026-11-26T06:10:04.000000Z"

    def test_format_timestamp_small_year_is_padded(self) -> None:
        assert format_timestamp(datetime(33, 1, 1, tzinfo=UTC)) == "0033-01-01T00:00:00.000000Z"

    def test_scalar_types(self) -> None:
        uid = uuid.uuid4()
        assert to_jsonable(date(2026, 2, 3)) == "2026-02-03"
        assert to_jsonable(uid) == str(uid)
        assert to_jsonable(Status.DISABLED) == "disabled"
        assert type(to_jsonable(Status.DISABLED)) is str
        assert to_jsonable(Level.LOW) == 1
        assert type(to_jsonable(Level.LOW)) is int
        for plain in (True, False, 0, -3, 1.5, "text", None):
            assert to_jsonable(plain) is plain

    def test_dataclass_recursive_with_field_names(self) -> None:
        when = datetime(2026, 1, 1, tzinfo=UTC)

        @dataclass(frozen=True)
        class Team:
            name: str
            owner: Owner
            members: list[Owner]
            tags: dict[str, Any]

        team = Team("ops", Owner("bob", when), [Owner("eve", when)], {"k": (1, when)})
        assert to_jsonable(team) == {
            "name": "ops",
            "owner": {"username": "bob", "since": "2026-01-01T00:00:00.000000Z"},
            "members": [{"username": "eve", "since": "2026-01-01T00:00:00.000000Z"}],
            "tags": {"k": [1, "2026-01-01T00:00:00.000000Z"]},
        }

    def test_sets_become_sorted_lists(self) -> None:
        assert to_jsonable(frozenset({"write", "admin", "read"})) == ["admin", "read", "write"]

    def test_unknown_type_raises(self) -> None:
        with pytest.raises(TypeError, match="object"):
            to_jsonable(object())


class TestDumps:
    def test_compact_form(self) -> None:
        assert dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'

    def test_indented_form(self) -> None:
        assert dumps({"a": 1}, indent=2) == '{\n  "a": 1\n}'

    def test_dataclass_and_datetime(self) -> None:
        when = datetime(2026, 11, 26, 6, 10, 4, 123456, tzinfo=UTC)
        assert json.loads(dumps(Owner("bob", when))) == {
            "username": "bob",
            "since": "2026-11-26T06:10:04.123456Z",
        }

    def test_uuid_keys_fall_back_to_full_conversion(self) -> None:
        uid = uuid.UUID(int=1)
        assert json.loads(dumps({uid: 1})) == {str(uid): 1}

    def test_terminal_unsafe_characters_are_escaped_but_value_kept(self) -> None:
        value = "a\x1b[2J\x9b31m\u202egpj.exe\x7f"
        text = dumps({"v": value})
        for raw in ("\x1b", "\x9b", "\u202e", "\x7f"):
            assert raw not in text
        assert json.loads(text) == {"v": value}


# --------------------------------------------------------------------------- sanitize


class TestInert:
    def test_plain_text_is_returned_unchanged(self) -> None:
        text = "alice@example.com — Zoë 日本"
        assert inert(text) is text

    def test_escape_sequences_become_visible(self) -> None:
        assert inert(CLEAR_SCREEN) == "\\x1b[2J"
        assert "\x1b" not in inert(OSC8_LINK)
        assert inert(OSC8_LINK) == "\\x1b]8;;http://x\\x1b\\link\\x1b]8;;\\x1b\\"

    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("\t", "\\t"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\x00", "\\x00"),
            ("\x07", "\\x07"),
            ("\x7f", "\\x7f"),
            ("\x85", "\\x85"),
            ("\x9b", "\\x9b"),
            ("\u202a", "\\u202a"),
            ("\u202e", "\\u202e"),
            ("\u2066", "\\u2066"),
            ("\u2069", "\\u2069"),
        ],
    )
    def test_each_control_class(self, raw: str, shown: str) -> None:
        assert inert(f"a{raw}b") == f"a{shown}b"

    def test_no_control_character_survives(self) -> None:
        every = "".join(chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)))
        bidi = "".join(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
        result = inert(every + bidi)
        assert result.isprintable()
        assert result.isascii()


class TestCsvSafe:
    @pytest.mark.parametrize(
        "cell",
        ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")', "'quoted", "'"],
    )
    def test_formula_triggers_and_apostrophes_get_a_quote(self, cell: str) -> None:
        # A real leading apostrophe is escaped too, so the import can undo the escape exactly.
        assert csv_safe(cell) == "'" + cell

    @pytest.mark.parametrize("cell", ["", "alice", "a=b", "1-2", "a'b", " =x"])
    def test_other_cells_unchanged(self, cell: str) -> None:
        assert csv_safe(cell) == cell


# --------------------------------------------------------------------------- Terminal basics


class TestTerminalBasics:
    def test_formats_constant(self) -> None:
        assert OUTPUT_FORMATS == ("table", "wide", "json", "jsonl", "csv", "yaml")

    def test_unknown_format_is_invalid_input(self) -> None:
        with pytest.raises(InvalidInput, match="xml"):
            Terminal(output_format="xml")

    def test_tty_properties(self) -> None:
        terminal = Terminal(stdout=FakeTTY(), stderr=io.StringIO())
        assert terminal.stdout_is_tty
        assert not terminal.stderr_is_tty

    def test_closed_stream_is_not_a_tty(self) -> None:
        stream = io.StringIO()
        stream.close()
        assert not Terminal(stdout=stream).stdout_is_tty

    def test_default_streams_are_looked_up_late(self, capsys: pytest.CaptureFixture[str]) -> None:
        terminal = Terminal(output_format="jsonl")
        terminal.emit_object({"a": 1})
        terminal.notice("hello")
        captured = capsys.readouterr()
        assert captured.out == '{"a":1}\n'
        assert captured.err == "hello\n"

    def test_column_title(self) -> None:
        assert Column("email").title == "email"
        assert Column("created_at", "Created").title == "Created"


# --------------------------------------------------------------------------- json / jsonl / csv


class TestJsonRows:
    def test_array_parses_to_the_jsonable_rows(self) -> None:
        rows = [make_user(), make_user(username="bob", last_login_at=datetime(2026, 1, 1))]
        terminal, out, err = make_terminal("json")
        assert terminal.emit_rows(rows, columns=USER_COLUMNS) == 2
        assert json.loads(out.getvalue()) == [to_jsonable(r) for r in rows]
        assert err.getvalue() == ""

    def test_array_is_byte_identical_to_json_dumps_indent_2(self) -> None:
        rows = [make_user(), make_user(username="Zoë")]
        terminal, out, _ = make_terminal("json")
        terminal.emit_rows(rows, columns=USER_COLUMNS)
        expected = json.dumps([to_jsonable(r) for r in rows], indent=2, ensure_ascii=False)
        assert out.getvalue() == expected + "\n"

    def test_array_is_streamed(self) -> None:
        terminal, out, _ = make_terminal("json")

        def rows() -> Iterator[dict[str, int]]:
            yield {"n": 1}
            # The first item is already written before the second is produced.
            assert out.getvalue() == '[\n  {\n    "n": 1\n  }'
            yield {"n": 2}

        assert terminal.emit_rows(rows(), columns=[Column("n")]) == 2
        assert json.loads(out.getvalue()) == [{"n": 1}, {"n": 2}]

    def test_empty_array_and_notice(self) -> None:
        terminal, out, err = make_terminal("json")
        assert terminal.emit_rows([], columns=USER_COLUMNS, empty_notice="no users found") == 0
        assert out.getvalue() == "[]\n"
        assert err.getvalue() == "no users found\n"

    def test_quiet_suppresses_empty_notice(self) -> None:
        terminal, out, err = make_terminal("json", quiet=True)
        terminal.emit_rows(iter([]), columns=USER_COLUMNS, empty_notice="no users found")
        assert out.getvalue() == "[]\n"
        assert err.getvalue() == ""

    def test_hidden_table_columns_are_still_in_json(self) -> None:
        terminal, out, _ = make_terminal("json")
        terminal.emit_rows([make_user()], columns=USER_COLUMNS)
        (row,) = json.loads(out.getvalue())
        assert list(row) == [c.key for c in USER_COLUMNS]
        assert row["id"] == "12345678-1234-5678-1234-567812345678"
        assert row["failed_logins"] == 0
        assert row["last_login_at"] is None
        assert row["is_active"] is True
        assert row["created_at"] == "2026-11-26T06:10:04.123456Z"

    def test_only_listed_columns_are_emitted(self) -> None:
        terminal, out, _ = make_terminal("json")
        terminal.emit_rows([{"a": 1, "secret": "x"}], columns=[Column("a")])
        assert json.loads(out.getvalue()) == [{"a": 1}]

    def test_formatter_is_table_only(self) -> None:
        terminal, out, _ = make_terminal("json")
        terminal.emit_rows([{"n": 5}], columns=[Column("n", formatter=lambda v: f"<{v}>")])
        assert json.loads(out.getvalue()) == [{"n": 5}]


class TestJsonlRows:
    def test_one_object_per_line(self) -> None:
        rows = [make_user(), make_user(username="bob")]
        terminal, out, _ = make_terminal("jsonl")
        assert terminal.emit_rows(rows, columns=USER_COLUMNS) == 2
        lines = out.getvalue().splitlines()
        assert len(lines) == 2
        assert [json.loads(line) for line in lines] == [to_jsonable(r) for r in rows]
        assert out.getvalue().endswith("\n")

    def test_empty_is_nothing(self) -> None:
        terminal, out, err = make_terminal("jsonl")
        assert terminal.emit_rows([], columns=USER_COLUMNS, empty_notice="no users found") == 0
        assert out.getvalue() == ""
        assert err.getvalue() == "no users found\n"

    def test_control_characters_never_reach_the_stream_raw(self) -> None:
        terminal, out, _ = make_terminal("jsonl")
        terminal.emit_rows([{"u": CLEAR_SCREEN + "\u202e"}], columns=[Column("u")])
        assert "\x1b" not in out.getvalue()
        assert "\u202e" not in out.getvalue()
        assert json.loads(out.getvalue()) == {"u": CLEAR_SCREEN + "\u202e"}


class TestCsvRows:
    def test_header_only_when_empty(self) -> None:
        terminal, out, err = make_terminal("csv")
        assert terminal.emit_rows([], columns=USER_COLUMNS, empty_notice="no users found") == 0
        assert out.getvalue() == ",".join(c.key for c in USER_COLUMNS) + "\n"
        assert err.getvalue() == "no users found\n"

    def test_values(self) -> None:
        terminal, out, _ = make_terminal("csv")
        terminal.emit_rows([make_user()], columns=USER_COLUMNS)
        header, row = list(csv.reader(io.StringIO(out.getvalue())))
        assert header == [c.key for c in USER_COLUMNS]
        assert dict(zip(header, row, strict=True)) == {
            "id": "12345678-1234-5678-1234-567812345678",
            "username": "alice",
            "email": "alice@example.com",
            "is_active": "true",
            "status": "active",
            "scopes": '["admin","read"]',
            "failed_logins": "0",
            "created_at": "2026-11-26T06:10:04.123456Z",
            "last_login_at": "",
        }

    def test_formula_injection_is_escaped(self) -> None:
        rows = [
            {"name": '=HYPERLINK("http://evil","x")', "n": -5},
            {"name": "+1", "n": 1.5},
            {"name": "-cmd", "n": 0},
            {"name": "@SUM(A1)", "n": 0},
            {"name": "\tx", "n": 0},
            {"name": "plain", "n": 0},
        ]
        terminal, out, _ = make_terminal("csv")
        terminal.emit_rows(rows, columns=[Column("name"), Column("n")])
        parsed = list(csv.reader(io.StringIO(out.getvalue())))
        assert parsed[1:] == [
            ['\'=HYPERLINK("http://evil","x")', "-5"],
            ["'+1", "1.5"],
            ["'-cmd", "0"],
            ["'@SUM(A1)", "0"],
            ["'\tx", "0"],
            ["plain", "0"],
        ]

    def test_commas_quotes_and_newlines_round_trip(self) -> None:
        value = 'a,b "c"\nd'
        terminal, out, _ = make_terminal("csv")
        terminal.emit_rows([{"v": value}], columns=[Column("v")])
        assert list(csv.reader(io.StringIO(out.getvalue()))) == [["v"], [value]]


# --------------------------------------------------------------------------- tables


class TestTable:
    def test_hidden_columns_and_headers(self) -> None:
        terminal, out, _ = make_terminal("table")
        assert terminal.emit_rows([make_user()], columns=USER_COLUMNS) == 1
        text = out.getvalue()
        assert "User" in text
        assert "Created" in text
        assert "alice@example.com" in text
        assert "12345678-1234" not in text  # id is in_table=False
        assert "2026-11-26 06:10:04Z" in text
        assert "admin, read" in text

    def test_escape_sequences_are_inert(self) -> None:
        rows = [{"name": CLEAR_SCREEN + "x", "link": OSC8_LINK}]
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows(rows, columns=[Column("name"), Column("link")])
        text = out.getvalue()
        assert "\x1b" not in text
        assert "\\x1b[2Jx" in text
        assert "\\x1b]8;;http://x\\x1b\\link" in text

    def test_escape_sequences_are_inert_on_a_tty(self) -> None:
        out = FakeTTY()
        terminal, _, _ = make_terminal("table", stdout=out, no_color=True)
        terminal.emit_rows([{"name": CLEAR_SCREEN}], columns=[Column("name")])
        assert "\x1b" not in out.getvalue()

    def test_markup_is_printed_literally(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([{"name": "[bold]x[/bold]"}], columns=[Column("name", "[red]H")])
        assert "[bold]x[/bold]" in out.getvalue()
        assert "[red]H" in out.getvalue()

    def test_markup_is_printed_literally_on_a_color_tty(self) -> None:
        out = FakeTTY()
        terminal, _, _ = make_terminal("table", stdout=out)
        terminal.emit_rows([{"name": "[bold]x[/bold]"}], columns=[Column("name")])
        assert "[bold]x[/bold]" in out.getvalue()

    def test_no_ansi_when_piped(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([make_user()], columns=USER_COLUMNS)
        terminal.emit_object(make_user(), title="user alice")
        assert "\x1b" not in out.getvalue()

    def test_ansi_on_a_tty_unless_no_color(self, monkeypatch: pytest.MonkeyPatch) -> None:
        out = FakeTTY()
        make_terminal("table", stdout=out)[0].emit_rows([make_user()], columns=USER_COLUMNS)
        assert "\x1b[" in out.getvalue()

        out = FakeTTY()
        make_terminal("table", stdout=out, no_color=True)[0].emit_rows(
            [make_user()], columns=USER_COLUMNS
        )
        assert "\x1b" not in out.getvalue()

        monkeypatch.setenv("NO_COLOR", "1")
        out = FakeTTY()
        make_terminal("table", stdout=out)[0].emit_rows([make_user()], columns=USER_COLUMNS)
        assert "\x1b" not in out.getvalue()

    def test_empty_no_color_env_is_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("NO_COLOR", "")
        terminal, _, _ = make_terminal("table", stdout=FakeTTY())
        assert terminal.stdout_color

    def test_force_color_does_not_colour_a_pipe(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FORCE_COLOR", "1")
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([make_user()], columns=USER_COLUMNS)
        assert "\x1b" not in out.getvalue()

    @pytest.mark.parametrize("columns_env", [None, "80", "20"])
    def test_long_email_survives_piped_output(
        self, monkeypatch: pytest.MonkeyPatch, columns_env: str | None
    ) -> None:
        if columns_env is not None:
            monkeypatch.setenv("COLUMNS", columns_env)
        email = "x" * 138 + "@example.com"
        assert len(email) == 150
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([make_user(email=email)], columns=USER_COLUMNS)
        text = out.getvalue()
        assert email in text
        assert "…" not in text
        data_lines = [line for line in text.splitlines() if email in line]
        assert len(data_lines) == 1
        assert "alice" in data_lines[0]

    def test_piped_lines_have_no_trailing_blanks(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows(
            [make_user(), make_user(username="b", email="b@x")], columns=USER_COLUMNS
        )
        for line in out.getvalue().splitlines():
            assert line == line.rstrip()

    def test_long_identifiers_are_never_cut_on_a_narrow_tty(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # An email wider than the terminal is neither folded nor cut: the
        # line is longer than the terminal, which wraps it for the eye while
        # the address stays one word to copy.
        monkeypatch.setenv("COLUMNS", "60")
        email = "q" * 138 + "@example.com"
        out = FakeTTY()
        terminal, _, _ = make_terminal("table", stdout=out, no_color=True)
        terminal.emit_rows([make_user(email=email)], columns=USER_COLUMNS)
        text = out.getvalue()
        assert "…" not in text
        assert email in text

    def test_formatter_used_in_table(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([{"n": 5}], columns=[Column("n", formatter=lambda v: f"<{v}>")])
        assert "<5>" in out.getvalue()

    def test_formatter_output_is_made_inert(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_rows([{"n": "x"}], columns=[Column("n", formatter=lambda v: "\x1b[31m" + v)])
        assert "\x1b" not in out.getvalue()

    def test_empty_table_prints_nothing_and_notices(self) -> None:
        terminal, out, err = make_terminal("table")
        assert terminal.emit_rows([], columns=USER_COLUMNS, empty_notice="no users found") == 0
        assert out.getvalue() == ""
        assert err.getvalue() == "no users found\n"


# --------------------------------------------------------------------------- single objects


class TestEmitObject:
    def test_json(self) -> None:
        user = make_user()
        terminal, out, _ = make_terminal("json")
        terminal.emit_object(user)
        assert out.getvalue() == json.dumps(to_jsonable(user), indent=2) + "\n"

    def test_jsonl(self) -> None:
        terminal, out, _ = make_terminal("jsonl")
        terminal.emit_object(make_user(), fields=["username", "created_at"])
        assert out.getvalue() == '{"username":"alice","created_at":"2026-11-26T06:10:04.123456Z"}\n'

    def test_csv(self) -> None:
        terminal, out, _ = make_terminal("csv")
        terminal.emit_object({"name": "=x", "n": 3})
        assert out.getvalue() == "name,n\n'=x,3\n"

    def test_table_key_value(self) -> None:
        terminal, out, _ = make_terminal("table")
        terminal.emit_object(
            make_user(username="[bold]" + CLEAR_SCREEN), title="user [i]" + CLEAR_SCREEN
        )
        text = out.getvalue()
        assert "\x1b" not in text
        assert "user [i]\\x1b[2J" in text
        lines = text.splitlines()
        assert any(line.startswith("username") and "[bold]\\x1b[2J" in line for line in lines)
        assert any(line.startswith("last_login_at") for line in lines)

    def test_fields_select_and_order(self) -> None:
        terminal, out, _ = make_terminal("json")
        terminal.emit_object(make_user(), fields=["email", "username"])
        assert list(json.loads(out.getvalue())) == ["email", "username"]

    def test_unknown_object_without_fields(self) -> None:
        terminal, _, _ = make_terminal("json")
        with pytest.raises(TypeError):
            terminal.emit_object(object())


# --------------------------------------------------------------------------- stderr


class TestMessages:
    def test_notice_success_warning(self) -> None:
        terminal, out, err = make_terminal("table")
        terminal.notice("note")
        terminal.success("done")
        terminal.warning("careful")
        assert out.getvalue() == ""
        assert err.getvalue() == "note\ndone\nwarning: careful\n"

    def test_quiet_keeps_only_warnings(self) -> None:
        terminal, _, err = make_terminal("table", quiet=True)
        terminal.notice("note")
        terminal.success("done")
        terminal.warning("careful")
        assert err.getvalue() == "warning: careful\n"

    def test_messages_are_inert_but_keep_line_breaks(self) -> None:
        terminal, _, err = make_terminal("table")
        terminal.notice("created " + CLEAR_SCREEN + "\nsecond line")
        assert err.getvalue() == "created \\x1b[2J\nsecond line\n"


class TestError:
    @pytest.mark.parametrize("fmt", ["json", "jsonl"])
    def test_json_error_object(self, fmt: str) -> None:
        terminal, out, err = make_terminal(fmt)
        terminal.error(NotFound("user 'bob' not found"))
        assert out.getvalue() == ""
        text = err.getvalue()
        assert text.count("\n") == 1
        assert json.loads(text) == {
            "error": {"code": "not_found", "message": "user 'bob' not found", "exit_code": 3}
        }

    def test_json_error_with_hint(self) -> None:
        terminal, _, err = make_terminal("json")
        terminal.error(SchemaOutdated("schema is at 0001, head is 0003"))
        assert json.loads(err.getvalue()) == {
            "error": {
                "code": "schema_outdated",
                "message": "schema is at 0001, head is 0003",
                "exit_code": 8,
                "hint": "run `vutf db upgrade`",
            }
        }

    def test_json_error_is_safe_for_a_terminal(self) -> None:
        terminal, _, err = make_terminal("jsonl")
        terminal.error(NotFound("no user " + CLEAR_SCREEN))
        assert "\x1b" not in err.getvalue()
        assert json.loads(err.getvalue())["error"]["message"] == "no user " + CLEAR_SCREEN

    @pytest.mark.parametrize("fmt", ["table", "csv"])
    def test_text_error_and_hint(self, fmt: str) -> None:
        terminal, out, err = make_terminal(fmt)
        terminal.error(SchemaOutdated("schema out of date"))
        assert out.getvalue() == ""
        assert err.getvalue() == "error: schema out of date\nhint: run `vutf db upgrade`\n"

    def test_text_error_without_hint_is_inert(self) -> None:
        terminal, _, err = make_terminal("table")
        terminal.error(NotFound("no user " + CLEAR_SCREEN))
        assert err.getvalue() == "error: no user \\x1b[2J\n"

    def test_errors_are_shown_when_quiet(self) -> None:
        terminal, _, err = make_terminal("table", quiet=True)
        terminal.error(NotFound("gone"))
        assert err.getvalue() == "error: gone\n"


# --------------------------------------------------------------------------- progress


class TestProgress:
    def test_noop_when_stderr_is_not_a_tty(self) -> None:
        terminal, out, err = make_terminal("table")
        with terminal.progress(3, "working") as advance:
            for _ in range(3):
                advance(1)
        assert out.getvalue() == ""
        assert err.getvalue() == ""

    def test_noop_when_quiet(self) -> None:
        err = FakeTTY()
        terminal, _, _ = make_terminal("table", stderr=err, quiet=True)
        with terminal.progress(None, "working") as advance:
            advance(5)
        assert err.getvalue() == ""

    def test_bar_on_a_tty_stderr_only(self) -> None:
        err = FakeTTY()
        terminal, out, _ = make_terminal("json", stderr=err, no_color=True)
        with terminal.progress(2, "[red]scan " + CLEAR_SCREEN) as advance:
            advance(1)
            advance(1)
        assert out.getvalue() == ""
        assert "[red]scan \\x1b[2J" in err.getvalue()
        assert "\x1b[2J" not in err.getvalue()


# --------------------------------------------------------------------------- import cost


def test_machine_formats_do_not_import_rich() -> None:
    script = textwrap.dedent(
        """
        import io, sys
        from vutf_cli.output import Terminal, Column
        from vutf_cli.errors import NotFound
        assert "rich" not in sys.modules, "importing vutf_cli.output imported rich"
        rows = [{"a": 1, "b": "x"}]
        cols = [Column("a"), Column("b", in_table=False)]
        for fmt in ("json", "jsonl", "csv"):
            t = Terminal(output_format=fmt, stdout=io.StringIO(), stderr=io.StringIO())
            t.emit_rows(rows, columns=cols, empty_notice="none")
            t.emit_rows([], columns=cols, empty_notice="none")
            t.emit_object(rows[0])
            t.notice("n"); t.warning("w"); t.error(NotFound("x", hint="h"))
            with t.progress(1, "p") as advance:
                advance(1)
        loaded = sorted(m for m in sys.modules if m == "rich" or m.startswith("rich."))
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
