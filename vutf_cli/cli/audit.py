"""`vutf audit`: list, show, follow, export, verify, head and stats over the audit log.

Each command parses, makes one service call and renders; the decisions
(filters, index-served query shapes, cursors, snapshots, polling) are in
``vutf_cli.services.audit``.  Services are imported inside the commands so
that ``vutf --help`` never imports SQLAlchemy.

``--actor`` is also a global option (who is acting, for the audit rows a
command writes), and global options are taken from anywhere on the line.
These commands write no audit rows, so here an ``--actor`` given on the
command line is always the filter, wherever it stands; ``VUTF_ACTOR`` and the
config file never filter.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output import Column, Terminal
    from vutf_cli.services.audit import AuditQuery

app = typer.Typer(
    help="Read and check the audit log: list, show, follow, export, verify, head, stats.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

EXPORT_FILE_MODE = 0o600
EXPORT_FORMATS = ("jsonl", "csv", "json")
_TABLE_FIELDS = frozenset(
    {"seq", "created_at", "actor", "action", "resource_type", "resource_id", "status"}
)
_VERIFY_FIELDS = [
    "ok",
    "checked",
    "first_seq",
    "last_seq",
    "head",
    "bad_seq",
    "problem",
    "detail",
]
NO_ENTRIES = "no audit entries found"

# -- shared options ---------------------------------------------------------------------
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", metavar="ACTOR", help="Only entries by this actor (exact)."),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user", metavar="USER", help="Only entries about this user: username, email or id."
    ),
]
ActionOption = Annotated[
    str | None,
    typer.Option(
        "--action",
        metavar="ACTION",
        help="Only this action (user.create) or glob (user.*, *.create).",
    ),
]
ResourceTypeOption = Annotated[
    str | None,
    typer.Option("--resource-type", metavar="TYPE", help="Only this resource type (user, ...)."),
]
ResourceIdOption = Annotated[
    str | None, typer.Option("--resource-id", metavar="ID", help="Only this resource id.")
]
StatusOption = Annotated[
    str | None,
    typer.Option("--status", metavar="STATUS", help="Only this status: success, failure, error."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="From TIME on: ISO 8601 (UTC if no zone), 15m, 2h, 7d, today, yesterday.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="Before TIME (same forms as --since)."),
]


def _entry_columns() -> list[Column]:
    import dataclasses

    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output import Column

    return [
        Column(field.name, in_table=field.name in _TABLE_FIELDS)
        for field in dataclasses.fields(AuditEntry)
    ]


def _query(
    app_ctx: AppContext,
    *,
    actor: str | None,
    user: str | None,
    action: str | None,
    resource_type: str | None,
    resource_id: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
) -> AuditQuery:
    from vutf_cli.services import audit as audit_service

    return audit_service.build_query(
        # A hoisted --actor lands in the global options (module docstring).
        actor=actor if actor is not None else app_ctx.options.actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=since,
        until=until,
    )


# -- list, show ---------------------------------------------------------------------------
@app.command("list")
def list_entries(
    ctx: typer.Context,
    actor: ActorOption = None,
    user: UserOption = None,
    action: ActionOption = None,
    resource_type: ResourceTypeOption = None,
    resource_id: ResourceIdOption = None,
    status: StatusOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Oldest first.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="At most N entries.")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", metavar="CURSOR", help="Continue after the page that printed CURSOR."
        ),
    ] = None,
) -> None:
    """List audit entries, newest first.

    When more entries follow, "next cursor: CURSOR" is printed on stderr;
    pass it back with --cursor (and the same filters) for the next page.
    Entries appended meanwhile never shift the pages.

    \b
    Examples:
      vutf audit list --since 2h --action 'user.*'
      vutf audit list --user alice --status failure --json
      vutf audit list --limit 500 --cursor dnV0Zi1hdWRpdC0xOmQ6NTAx
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    query = _query(
        app_ctx,
        actor=actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=since,
        until=until,
    )
    after_seq = (
        None if cursor is None else audit_service.decode_cursor(cursor, descending=not reverse)
    )
    page = audit_service.list_entries(
        app_ctx.runtime().db, query, descending=not reverse, after_seq=after_seq, limit=limit
    )
    app_ctx.terminal.emit_rows(page.entries, columns=_entry_columns(), empty_notice=NO_ENTRIES)
    if page.next_cursor is not None:
        app_ctx.terminal.notice(f"next cursor: {page.next_cursor}")


@app.command()
def show(
    ctx: typer.Context,
    seq_or_id: Annotated[
        str, typer.Argument(metavar="SEQ_OR_ID", help="The entry's seq number or its id.")
    ],
) -> None:
    """Show one audit entry in full, with its changes and metadata.

    \b
    Examples:
      vutf audit show 42
      vutf audit show 42 --json | jq .changes
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    entry = audit_service.show(app_ctx.runtime().db, seq_or_id)
    app_ctx.terminal.emit_object(entry, title=f"audit entry {entry.seq}")


# -- follow ---------------------------------------------------------------------------------
def _follow_line(entry: AuditEntry) -> str:
    """One line per entry for -o table: a table cannot stream."""
    from vutf_cli.output.sanitize import inert
    from vutf_cli.output.serialize import format_timestamp

    resource = entry.resource_type + (f":{entry.resource_id}" if entry.resource_id else "")
    fields = [
        str(entry.seq),
        format_timestamp(entry.created_at),
        entry.actor,
        entry.action,
        resource,
        entry.status,
    ]
    return "  ".join(inert(field) for field in fields) + "\n"


@app.command()
def follow(
    ctx: typer.Context,
    actor: ActorOption = None,
    user: UserOption = None,
    action: ActionOption = None,
    resource_type: ResourceTypeOption = None,
    resource_id: ResourceIdOption = None,
    status: StatusOption = None,
    since_seq: Annotated[
        int | None,
        typer.Option(
            "--since-seq", metavar="SEQ", min=1, help="Replay from SEQ first, then follow."
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="Pause between two polls."),
    ] = 1.0,
    max_events: Annotated[
        int | None,
        typer.Option("--max-events", metavar="N", min=1, help="Stop after N entries."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Stop after SECONDS."),
    ] = None,
) -> None:
    """Print new audit entries as they are appended, like tail -f.

    Starts after the current last entry (or replays from --since-seq).  Each
    entry is printed as soon as it is seen; -o jsonl gives one JSON object a
    line.  While the database is unreachable a warning goes to stderr and
    polling goes on; Ctrl-C stops with exit code 0.

    \b
    Examples:
      vutf -o jsonl audit follow --action 'user.*' | jq -c .
      vutf audit follow --status failure
      vutf -o jsonl audit follow --max-events 1 --timeout 60
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    terminal = app_ctx.terminal
    query = _query(
        app_ctx,
        actor=actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=None,
        until=None,
    )
    try:
        following = audit_service.follow(
            app_ctx.runtime().db,
            query,
            since_seq=since_seq,
            interval=interval,
            max_events=max_events,
            timeout=timeout,
            on_outage=lambda error: terminal.warning(f"{error.message}; still following, retrying"),
            on_recovery=lambda: terminal.notice("database reachable again; following"),
        )
        terminal.notice(f"following the audit log after seq {following.after_seq} (Ctrl-C stops)")
        if terminal.output_format == "table":
            for entry in following.entries:
                terminal.stdout.write(_follow_line(entry))
                terminal.stdout.flush()
        else:
            terminal.emit_rows(_flushed(terminal, following.entries), columns=_entry_columns())
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: not an error.
        with contextlib.suppress(OSError, ValueError):
            terminal.stdout.flush()


def _flushed(terminal: Terminal, entries: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
    """``entries``, with stdout flushed after each one is written (and Ctrl-C ending the stream).

    The renderer writes an entry, then asks for the next: that is when the
    flush happens, before waiting for the next poll.  Ending the stream on
    Ctrl-C lets -o json close its array.
    """
    try:
        for entry in entries:
            yield entry
            terminal.stdout.flush()
    except KeyboardInterrupt:
        return


# -- export ---------------------------------------------------------------------------------
def _export_format(explicit: str | None, global_format: str) -> str:
    if explicit is not None:
        chosen = explicit.strip().lower()
        if chosen not in EXPORT_FORMATS:
            raise InvalidInput(
                f"unknown export format {explicit!r}", hint="use one of: jsonl, csv, json"
            )
        return chosen
    return global_format if global_format in EXPORT_FORMATS else "jsonl"


@contextlib.contextmanager
def _private_file(path: Path, *, force: bool) -> Iterator[TextIO]:
    """Where ``--output-file`` goes: a regular file of mode 0600, or an existing stream.

    A new file is created 0600; an existing regular file is replaced only with
    ``force`` (truncated and made 0600), and either is removed if writing
    fails.  An existing device or FIFO (``/dev/null``, ``/dev/stdout`` on a
    pipe, a named pipe) holds nothing to overwrite: it is written as it is,
    never chmod-ed or removed; run as root, doing either would break the
    machine for everybody else.
    """
    fd, owned = _open_output_file(path, force=force)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
    except BaseException:
        if owned:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _open_output_file(path: Path, *, force: bool) -> tuple[int, bool]:
    """The open descriptor, and whether it is a regular file vutf may make private or remove."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, EXPORT_FILE_MODE)
    except FileExistsError:
        fd = _open_existing(path, force=force)
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
    else:
        os.fchmod(fd, EXPORT_FILE_MODE)  # the mode given to open() is filtered by the umask
        return fd, True
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return fd, False
    if not force:  # it became a regular file after the check in _open_existing
        os.close(fd)
        raise _exists(path)
    os.ftruncate(fd, 0)
    os.fchmod(fd, EXPORT_FILE_MODE)  # an overwritten file keeps its old mode otherwise
    return fd, True


def _open_existing(path: Path, *, force: bool) -> int:
    """Open what is at ``path``: no O_CREAT or O_TRUNC, nothing changes before its type is known."""
    with contextlib.suppress(OSError):
        if not force and stat.S_ISREG(os.stat(path).st_mode):
            raise _exists(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None


def _exists(path: Path) -> Conflict:
    return Conflict(
        f"{path} already exists; nothing was written", hint="use --force to overwrite it"
    )


@app.command()
def export(
    ctx: typer.Context,
    actor: ActorOption = None,
    user: UserOption = None,
    action: ActionOption = None,
    resource_type: ResourceTypeOption = None,
    resource_id: ResourceIdOption = None,
    status: StatusOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    export_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="jsonl (default), csv or json (a streamed array); -o jsonl|csv|json also works.",
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file",
            metavar="PATH",
            help="Write to PATH (a new file gets mode 0600) instead of stdout.",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --output-file.")
    ] = False,
) -> None:
    """Export audit entries, oldest first, streamed in constant memory.

    Everything comes from one consistent snapshot of the log, however long
    the export takes.  A progress bar is drawn on stderr when it is a
    terminal.

    \b
    Examples:
      vutf audit export > audit.jsonl
      vutf audit export --format csv --since 7d --output-file audit.csv
      vutf audit export --action 'api_key.*' | jq -c 'select(.status != "success")'
    """
    from vutf_cli.output import Terminal

    app_ctx = get_app(ctx)
    fmt = _export_format(export_format, app_ctx.settings.output)
    query = _query(
        app_ctx,
        actor=actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=since,
        until=until,
    )
    terminal = app_ctx.terminal
    app_ctx.runtime()  # the schema is checked before any --output-file is created
    with contextlib.ExitStack() as stack:
        if output_file is None:
            # Bound to the real stdout now: while a progress bar is drawn, Rich
            # redirects sys.stdout into its console (on stderr).
            target = Terminal(
                output_format=fmt,
                no_color=terminal.no_color,
                quiet=terminal.quiet,
                stdout=terminal.stdout,
            )
        else:
            handle = stack.enter_context(_private_file(output_file, force=force))
            target = Terminal(output_format=fmt, quiet=terminal.quiet, stdout=handle)
        count = _export_to(target, stack, app_ctx, query)
    where = "" if output_file is None else f" to {output_file}"
    terminal.notice(f"exported {count} audit {'entry' if count == 1 else 'entries'}{where}")


def _export_to(
    target: Terminal,
    stack: contextlib.ExitStack[bool | None],
    app_ctx: AppContext,
    query: AuditQuery,
) -> int:
    """Write the export to ``target``; return the number of entries."""
    from vutf_cli.services import audit as audit_service

    db = app_ctx.runtime(check_schema=False).db  # checked by the command already
    if target.output_format == "jsonl":
        # The lines are rendered by the database: most of a large export's cost.
        export = stack.enter_context(audit_service.open_json_lines_export(db, query))
        advance = stack.enter_context(app_ctx.terminal.progress(export.head_seq, _EXPORTING))
        with target.json_lines_writer(columns=_entry_columns()) as emit:
            return export.write(emit, advance)
    stream = stack.enter_context(audit_service.open_export(db, query))
    advance = stack.enter_context(app_ctx.terminal.progress(stream.head_seq, _EXPORTING))

    def tracked() -> Iterator[AuditEntry]:
        reached = 0
        for entry in stream.entries:
            advance(entry.seq - reached)
            reached = entry.seq
            yield entry

    return target.emit_rows(tracked(), columns=_entry_columns())


_EXPORTING = "exporting audit log"


# -- verify, head, stats ---------------------------------------------------------------------
@app.command()
def verify(
    ctx: typer.Context,
    since_seq: Annotated[
        int | None,
        typer.Option(
            "--since-seq", metavar="SEQ", min=1, help="Start at SEQ (linked to the row before)."
        ),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head recorded earlier (vutf audit head): it must still be in the chain.",
        ),
    ] = None,
) -> None:
    """Recompute the audit hash chain and report the first problem.

    Exit 0 when intact (with the count and the head), 6 naming the first bad
    seq and what is wrong: edited, missing, reordered, inserted, or anchor
    (the row recorded with --anchor is gone or different: the log was
    truncated or rewritten wholesale, which only an anchor can reveal).

    \b
    Examples:
      vutf audit verify
      vutf audit verify --anchor "$(cat audit-head.txt)"
      vutf audit head > audit-head.txt
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    recorded = None if anchor is None else audit_service.parse_anchor(anchor)
    result = audit_service.verify(app_ctx.runtime().db, since_seq=since_seq, anchor=recorded)
    app_ctx.terminal.emit_object(result, fields=_VERIFY_FIELDS, title="audit chain")
    if not result.ok:
        raise audit_service.chain_error(result)
    app_ctx.terminal.notice(f"audit chain intact: {result.checked} entries checked")


@app.command()
def head(ctx: typer.Context) -> None:
    """Print the head of the chain as SEQ:HASH, to record somewhere else.

    An empty log prints 0 and the genesis hash (64 zeros).  Pass a recorded
    head to `vutf audit verify --anchor` later to detect truncation.

    \b
    Examples:
      vutf audit head >> /secure/audit-heads.txt
      vutf audit head --json | jq -r .row_hash
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    current = audit_service.head(app_ctx.runtime().db)
    terminal = app_ctx.terminal
    if terminal.output_format == "table":
        # A plain line, so that $(vutf audit head) is the anchor itself.
        terminal.stdout.write(current.anchor + "\n")
        terminal.stdout.flush()
    else:
        terminal.emit_object(current, fields=["seq", "row_hash"])


@app.command()
def stats(
    ctx: typer.Context,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            metavar="DIMENSION",
            help="Group by: action, actor, resource-type, status or day (UTC).",
        ),
    ] = "action",
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Count audit entries by action, actor, resource type, status or day.

    \b
    Examples:
      vutf audit stats
      vutf audit stats --by status --since 24h --json
      vutf audit stats --by day --since 7d
    """
    from vutf_cli.output import Column
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    dimension = audit_service.stats_dimension(by)
    query = audit_service.build_query(since=since, until=until)
    result = audit_service.stats(app_ctx.runtime().db, by=dimension, query=query)
    rows: list[dict[str, Any]] = result.rows()
    app_ctx.terminal.emit_rows(
        rows, columns=[Column(result.dimension), Column("count")], empty_notice=NO_ENTRIES
    )
