"""What `users list`, `keys list` and `audit list` share: --limit, --cursor, --all, the output.

One promise for every list (docs/architecture.md §5): a script never gets a
partial list believing it whole.

* json, jsonl and csv carry every matching row unless ``--limit`` is given;
  the service walks keyset pages one after another, so memory stays flat.
* A table shows one page (``--limit``, default ``DEFAULT_PAGE_SIZE``); when
  more rows follow, a notice on stderr says how to get them.
* ``--all`` is every row, tables too.
* Whenever rows are left out, ``next cursor: C`` goes to stderr, also with
  ``--quiet`` (a script paging through needs it) and never to stdout, which
  stays one clean document.

It also owns the options of every list and show command that shape what is
written: ``--fields`` (which fields, in which order, in every format),
``--no-headers`` (table, wide and csv) and ``--no-pager`` (a table on a
terminal is otherwise paged, see :mod:`vutf_cli.output.pager`); a command
passes them to :func:`apply_view` before it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.errors import InvalidInput
from vutf_cli.services.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

if TYPE_CHECKING:
    from vutf_cli.cli.context import AppContext
    from vutf_cli.output import Column
    from vutf_cli.services.paging import Listing

__all__ = [
    "AllOption",
    "CursorOption",
    "FieldsOption",
    "LimitOption",
    "NoHeadersOption",
    "NoPagerOption",
    "apply_view",
    "emit_listing",
    "page_limit",
]

LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        metavar="N",
        min=1,
        max=MAX_PAGE_SIZE,
        show_default=False,
        help=(
            f"At most N rows (1-{MAX_PAGE_SIZE}), then the next cursor on stderr."
            f" Default: every row for json, jsonl and csv; a page of {DEFAULT_PAGE_SIZE}"
            " for a table."
        ),
    ),
]
CursorOption = Annotated[
    str | None,
    typer.Option(
        "--cursor",
        metavar="CURSOR",
        help="Continue after the page that printed 'next cursor: CURSOR' (same filters, sort).",
    ),
]
AllOption = Annotated[
    bool,
    typer.Option("--all", help="Every row, in a table too (not with --limit)."),
]


FieldsOption = Annotated[
    str | None,
    typer.Option(
        "--fields",
        metavar="FIELDS",
        help=(
            "Only these fields, in this order, comma-separated: the keys of this"
            " command's JSON output (an unknown one is an error listing them). Every format."
        ),
    ),
]
NoHeadersOption = Annotated[
    bool,
    typer.Option("--no-headers", help="No header line (table, wide and csv)."),
]
NoPagerOption = Annotated[
    bool,
    typer.Option(
        "--no-pager",
        help="Do not page a long table on a terminal ($VUTF_PAGER, $PAGER, or less -FRX).",
    ),
]


def apply_view(
    app_ctx: AppContext, *, fields: str | None, no_headers: bool, no_pager: bool
) -> None:
    """Hand ``--fields``, ``--no-headers`` and ``--no-pager`` to the terminal."""
    names = None
    if fields is not None:
        names = [name.strip() for name in fields.split(",")]
        if not all(names):
            raise InvalidInput(
                f"--fields {fields!r} names an empty field",
                hint="separate field names with commas: --fields username,email",
            )
    app_ctx.terminal.view(fields=names, headers=not no_headers, page=not no_pager)


def page_limit(app_ctx: AppContext, *, limit: int | None, all_rows: bool) -> int | None:
    """How many rows to show: ``limit``, None for every row, or a table's page."""
    if all_rows and limit is not None:
        raise InvalidInput("use either --all or --limit, not both")
    if limit is None and not all_rows and app_ctx.terminal.is_table:
        return DEFAULT_PAGE_SIZE
    return limit


def emit_listing(
    app_ctx: AppContext,
    listing: Listing[Any],
    *,
    columns: Sequence[Column],
    empty_notice: str,
    noun: str,
) -> None:
    """Write the rows, then, when some were left out, where the rest is."""
    terminal = app_ctx.terminal
    terminal.emit_rows(listing, columns=columns, empty_notice=empty_notice)
    cursor = listing.next_cursor
    if cursor is None:
        return
    # Written even with --quiet: it is how a script gets the next page;
    # after the pager, if one showed the rows.
    terminal.close()
    terminal.stderr.write(f"next cursor: {cursor}\n")
    terminal.stderr.flush()
    if terminal.is_table:
        terminal.notice(
            f"more {noun} follow: --all shows every one, --cursor {cursor} the next page"
        )
