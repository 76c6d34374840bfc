"""Tables that fit a terminal, --fields, --no-headers, the pager, mutation summaries.

The README's "Tables" section is the contract: identifiers are never cut,
free text is shortened with "…", columns go in each layout's drop order,
``-o wide`` shows everything, a pipe is never narrowed, rows stream in
chunks, and a table on a terminal goes through ``$VUTF_PAGER`` / ``$PAGER``.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vutf_cli.errors import InvalidInput
from vutf_cli.output import Terminal
from vutf_cli.output.columns import AUDIT_TABLE, KEY_TABLE, USER_TABLE, Column, TableLayout
from vutf_cli.output.pager import DEFAULT_PAGER, pager_command
from vutf_cli.output.table_format import fit_columns


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    username: str
    email: str
    full_name: str | None
    is_superuser: bool
    is_verified: bool
    created_at: datetime
    state: str


FIELDS = [
    "id",
    "username",
    "email",
    "full_name",
    "is_superuser",
    "is_verified",
    "created_at",
    "state",
]
COLUMNS = USER_TABLE.columns(FIELDS)


def user(n: int, **overrides: Any) -> User:
    values: dict[str, Any] = {
        "id": uuid.UUID(int=n),
        "username": f"operator-{n:03d}",
        "email": f"operator-{n:03d}@example.com",
        "full_name": "Someone With A Rather Long Name, Head of Things",
        "is_superuser": False,
        "is_verified": True,
        "created_at": datetime(2026, 11, 26, 6, 10, 4, tzinfo=UTC),
        "state": "active",
    }
    values.update(overrides)
    return User(**values)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "PAGER", "VUTF_PAGER", "VUTF_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)


def on_tty(
    monkeypatch: pytest.MonkeyPatch, width: int, fmt: str = "table"
) -> tuple[Terminal, FakeTTY, io.StringIO]:
    monkeypatch.setenv("COLUMNS", str(width))
    out, err = FakeTTY(), io.StringIO()
    return Terminal(output_format=fmt, stdout=out, stderr=err, no_color=True), out, err


def header_of(text: str) -> list[str]:
    return text.splitlines()[0].split()


# -- fitting a terminal ------------------------------------------------------------------
@pytest.mark.parametrize("width", [120, 80, 60])
def test_identifiers_stay_whole_and_rows_fit(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    terminal, out, _ = on_tty(monkeypatch, width)
    rows = [user(n) for n in range(3)] + [user(3, state="deleted")]
    terminal.emit_rows(rows, columns=COLUMNS)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), lines
    shown = header_of(out.getvalue())
    assert shown[0] == "username"
    assert "state" in shown  # never dropped
    for n in range(4):
        assert f"operator-{n:03d}" in out.getvalue()
        if "email" in shown:
            assert f"operator-{n:03d}@example.com" in out.getvalue()
    assert "deleted" in lines[-1]


def test_free_text_is_shortened_with_an_ellipsis(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal, out, _ = on_tty(monkeypatch, 100)
    terminal.emit_rows([user(1)], columns=COLUMNS)
    text = out.getvalue()
    assert "full_name" in header_of(text)
    assert "…" in text
    assert "Someone With A Rather Long Name, Head of Things" not in text


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (140, ["username", "email", "state", "full_name", "superuser", "verified", "created_at"]),
        (100, ["username", "email", "state", "full_name", "superuser", "verified", "created_at"]),
        (90, ["username", "email", "state", "full_name", "superuser", "created_at"]),
        (60, ["username", "email", "state", "superuser"]),
        (40, ["username", "state", "superuser"]),
        (25, ["username", "state"]),
    ],
)
def test_columns_are_dropped_in_the_layouts_order(
    monkeypatch: pytest.MonkeyPatch, width: int, shown: list[str]
) -> None:
    # Widths: username 12, email 24, state 6, full_name 48 (9 shortened),
    # superuser 9, verified 8, created_at 20; two spaces between columns.
    # verified goes first; at 60 created_at (20 wide) cannot stay, but the
    # narrower superuser, dropped later in the order, can.
    terminal, out, _ = on_tty(monkeypatch, width)
    terminal.emit_rows([user(1)], columns=COLUMNS)
    assert header_of(out.getvalue()) == shown
    # The long full name is shortened where it stays but has no room.
    assert ("…" in out.getvalue()) == ("full_name" in shown and width < 140)


def test_a_narrow_column_is_not_given_up_for_a_wide_one() -> None:
    columns = [
        Column("a"),
        Column("wide", drop_rank=1),
        Column("narrow", drop_rank=0),
    ]
    # "wide" (more important) cannot fit at 30 even alone; "narrow" can.
    assert fit_columns(columns, [5, 40, 6], [1, 4, 6], 30) == [0, 2]
    assert fit_columns(columns, [5, 40, 6], [1, 4, 6], None) == [0, 1, 2]


def test_every_layout_keeps_its_identifiers_and_drops_only_its_own_columns() -> None:
    for layout in (USER_TABLE, KEY_TABLE, AUDIT_TABLE):
        shown = {column.key for column in layout.shown}
        assert set(layout.drop_order) < shown
        assert len(set(layout.drop_order)) == len(layout.drop_order)
        for column in layout.shown:
            if column.key in ("username", "email", "key_prefix", "action", "seq", "state"):
                assert column.fit == "keep", column


def test_wide_shows_every_column_undropped_and_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal, out, _ = on_tty(monkeypatch, 60, fmt="wide")
    terminal.emit_rows([user(1)], columns=COLUMNS)
    text = out.getvalue()
    assert header_of(text) == [
        "username",
        "email",
        "state",
        "full_name",
        "superuser",
        "verified",
        "created_at",
        "id",
    ]
    assert "…" not in text
    assert "Someone With A Rather Long Name, Head of Things" in text


def test_a_pipe_is_never_narrowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    Terminal(output_format="table", stdout=out).emit_rows([user(1)], columns=COLUMNS)
    assert len(header_of(out.getvalue())) == len(USER_TABLE.shown)
    assert "Someone With A Rather Long Name, Head of Things" in out.getvalue()


# -- streaming -------------------------------------------------------------------------------
def test_a_long_table_starts_printing_before_the_last_row_is_read() -> None:
    out = io.StringIO()
    written_when: dict[int, int] = {}

    def rows() -> Iterator[User]:
        for n in range(10_000):
            written_when[n] = len(out.getvalue())
            yield user(n % 1000)

    terminal = Terminal(output_format="table", stdout=out)
    assert terminal.emit_rows(rows(), columns=COLUMNS) == 10_000
    assert written_when[0] == 0
    assert written_when[9_999] > 0  # lines were out long before the last row existed
    assert written_when[200] > 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 10_002  # header, rule, rows
    # Widths come from the first chunk: later lines line up with the header.
    assert lines[-1].index("@") == lines[2].index("@")


def test_a_later_wider_identifier_widens_its_column_rather_than_being_cut() -> None:
    out = io.StringIO()
    rows = [user(n) for n in range(150)] + [user(150, username="a-much-longer-username-here")]
    Terminal(output_format="table", stdout=out).emit_rows(rows, columns=COLUMNS)
    assert "a-much-longer-username-here" in out.getvalue()
    assert "…" not in out.getvalue()


# -- --fields and --no-headers ----------------------------------------------------------------
def test_fields_select_and_order_in_every_format() -> None:
    out = io.StringIO()
    terminal = Terminal(output_format="json", stdout=out)
    terminal.view(fields=["email", "username"], headers=True, page=False)
    terminal.emit_rows([user(1)], columns=COLUMNS)
    assert json.loads(out.getvalue()) == [
        {"email": "operator-001@example.com", "username": "operator-001"}
    ]

    out = io.StringIO()
    terminal = Terminal(output_format="table", stdout=out)
    terminal.view(fields=["id", "username"], headers=True, page=False)  # id: not in the table
    terminal.emit_rows([user(1)], columns=COLUMNS)
    assert header_of(out.getvalue()) == ["id", "username"]

    out = io.StringIO()
    terminal = Terminal(output_format="csv", stdout=out)
    terminal.view(fields=["username"], headers=False, page=False)
    terminal.emit_rows([user(1), user(2)], columns=COLUMNS)
    assert out.getvalue() == "operator-001\noperator-002\n"


def test_fields_apply_to_one_object() -> None:
    out = io.StringIO()
    terminal = Terminal(output_format="json", stdout=out)
    terminal.view(fields=["state", "username"], headers=True, page=False)
    terminal.emit_object(user(1), fields=["username", "email"])
    assert json.loads(out.getvalue()) == {"state": "active", "username": "operator-001"}


def test_an_unknown_field_lists_the_valid_ones() -> None:
    out = io.StringIO()
    terminal = Terminal(output_format="table", stdout=out)
    terminal.view(fields=["username", "nope"], headers=True, page=False)
    with pytest.raises(InvalidInput) as raised:
        terminal.emit_rows([user(1)], columns=COLUMNS)
    assert raised.value.message == "unknown field 'nope'"
    assert raised.value.hint == "valid fields: " + ", ".join(FIELDS)
    assert out.getvalue() == ""


def test_no_headers_leaves_only_rows() -> None:
    out = io.StringIO()
    terminal = Terminal(output_format="table", stdout=out)
    terminal.view(fields=None, headers=False, page=False)
    terminal.emit_rows([user(1), user(2)], columns=COLUMNS)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["operator-001", "operator-002"]


# -- the pager --------------------------------------------------------------------------------
def test_pager_command_precedence() -> None:
    assert pager_command({}) == shlex.split(DEFAULT_PAGER) == ["less", "-FRX"]
    assert pager_command({"PAGER": "more"}) == ["more"]
    assert pager_command({"PAGER": "more", "VUTF_PAGER": "less -S"}) == ["less", "-S"]
    for off in ("cat", "", "  "):
        assert pager_command({"PAGER": "more", "VUTF_PAGER": off}) is None
    assert pager_command({"PAGER": "cat"}) is None


def _recording_pager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    record = tmp_path / "paged.txt"
    script = f"import sys; open({str(record)!r}, 'w').write(sys.stdin.read())"
    monkeypatch.setenv("VUTF_PAGER", shlex.join([sys.executable, "-c", script]))
    return record


def test_a_table_on_a_terminal_goes_through_the_pager(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = _recording_pager(monkeypatch, tmp_path)
    terminal, out, err = on_tty(monkeypatch, 80)
    terminal.view(fields=None, headers=True, page=True)
    terminal.emit_rows([user(1)], columns=COLUMNS)
    terminal.notice("more users follow")  # waits for the pager to end
    assert out.getvalue() == ""
    assert "operator-001" in record.read_text()
    assert err.getvalue() == "more users follow\n"


@pytest.mark.parametrize(
    ("fmt", "tty", "page"), [("json", True, True), ("table", False, True), ("table", True, False)]
)
def test_never_paged_for_machines_pipes_or_no_pager(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str, tty: bool, page: bool
) -> None:
    record = _recording_pager(monkeypatch, tmp_path)
    out = FakeTTY() if tty else io.StringIO()
    terminal = Terminal(output_format=fmt, stdout=out)
    terminal.view(fields=None, headers=True, page=page)
    terminal.emit_rows([user(1)], columns=COLUMNS)
    terminal.close()
    assert "operator-001" in out.getvalue()
    assert not record.exists()


# -- mutations ---------------------------------------------------------------------------------
def test_a_mutation_is_one_line_in_a_table_and_the_record_in_json() -> None:
    out, err = io.StringIO(), io.StringIO()
    table = Terminal(output_format="table", stdout=out, stderr=err)
    table.success("updated user 'operator-001'")
    table.emit_change(user(1), target="/tmp/vutf.db")
    assert out.getvalue() == ""
    assert err.getvalue() == "updated user 'operator-001'\ndatabase: /tmp/vutf.db\n"

    out, err = io.StringIO(), io.StringIO()
    as_json = Terminal(output_format="json", stdout=out, stderr=err)
    as_json.emit_change(user(1), fields=["username", "state"], target="/tmp/vutf.db")
    assert json.loads(out.getvalue()) == {"username": "operator-001", "state": "active"}
    assert "database" not in err.getvalue()


def test_layout_columns_keep_the_json_order() -> None:
    layout = TableLayout(shown=(), drop_order=())
    assert [column.key for column in layout.columns(FIELDS)] == FIELDS
    assert [column.key for column in COLUMNS] == FIELDS
