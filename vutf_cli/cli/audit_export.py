"""`vutf audit export`: every matching entry, oldest first, to stdout or a private file.

The snapshot, and the JSON lines the database renders itself, are in
``vutf_cli.services.audit_export``; here are the format, the target (stdout,
or an ``--output-file`` written by :func:`~vutf_cli.cli.private_file.private_file`:
a temporary file renamed over PATH once the export is complete) and the
progress bar.  Registered on the `vutf audit` group in
``vutf_cli.cli.audit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.audit_options import (
    ActionOption,
    ActorOption,
    ResourceIdOption,
    ResourceTypeOption,
    SinceOption,
    SinceSeqOption,
    StatusOption,
    UntilOption,
    UserOption,
    build_query,
    entry_columns,
)
from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.cli.private_file import ForceOption, OutputFileOption, private_file
from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output import Terminal
    from vutf_cli.services.audit import AuditQuery

EXPORT_FORMATS = ("jsonl", "csv", "json")
_EXPORTING = "exporting audit log"


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
    since_seq: SinceSeqOption = None,
    export_format: Annotated[
        str | None,
        # The old spelling of -o here (-o is the output format everywhere).
        typer.Option("--format", metavar="FORMAT", hidden=True),
    ] = None,
    output_file: OutputFileOption = None,
    force: ForceOption = False,
) -> None:
    """Export audit entries, oldest first, streamed in constant memory.

    Everything comes from one consistent snapshot of the log, however long
    the export takes.  A progress bar is drawn on stderr when it is a
    terminal.  Formats: -o [jsonl|csv|json] (json: a streamed array); the
    default is jsonl whatever VUTF_OUTPUT says.

    \b
    Examples:
      vutf audit export > audit.jsonl
      vutf audit export -o csv --since 7d --output-file audit.csv
      vutf audit export --action 'api_key.*' | jq -c 'select(.status != "success")'
    """
    from vutf_cli.output import Terminal

    app_ctx = get_app(ctx)
    if export_format is not None:
        app_ctx.terminal.warning("--format is deprecated; use -o")
    fmt = _export_format(export_format, app_ctx.raw_output_format(EXPORT_FORMATS, prints="jsonl"))
    query = build_query(
        app_ctx,
        actor=actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=since,
        until=until,
        since_seq=since_seq,
    )
    terminal = app_ctx.terminal
    app_ctx.database()  # the schema is checked before any --output-file is created
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
            handle = stack.enter_context(private_file(output_file, force=force))
            target = Terminal(output_format=fmt, quiet=terminal.quiet, stdout=handle)
        count = _export_to(target, stack, app_ctx, query)
    where = "" if output_file is None else f" to {output_file}"
    terminal.notice(f"exported {count} audit {'entry' if count == 1 else 'entries'}{where}")


def _export_format(explicit: str | None, flag_format: str) -> str:
    """--format, else -o from the command line, else jsonl.

    ``flag_format`` is "table" unless -o/--json was given: the format
    configured in VUTF_OUTPUT or the config file does not change what
    `vutf audit export > audit.jsonl` writes (docs/architecture.md §5.3).
    """
    given = None if flag_format == "table" else flag_format
    if explicit is None:
        return given or "jsonl"
    chosen = explicit.strip().lower()
    if chosen not in EXPORT_FORMATS:
        raise InvalidInput(
            f"unknown export format {explicit!r}", hint="use one of: jsonl, csv, json"
        )
    if given is not None and given != chosen:
        raise InvalidInput(f"--format {chosen} conflicts with -o {given}")
    return chosen


def _export_to(
    target: Terminal,
    stack: contextlib.ExitStack[bool | None],
    app_ctx: AppContext,
    query: AuditQuery,
) -> int:
    """Write the export to ``target``; return the number of entries."""
    from vutf_cli.services import audit_export

    db = app_ctx.database(check_schema=False)  # checked by the command already
    if target.output_format == "jsonl":
        # The lines are rendered by the database: most of a large export's cost.
        export = stack.enter_context(audit_export.open_json_lines_export(db, query))
        advance = stack.enter_context(app_ctx.terminal.progress(export.head_seq, _EXPORTING))
        with target.json_lines_writer(columns=entry_columns()) as emit:
            return export.write(emit, advance)
    stream = stack.enter_context(audit_export.open_export(db, query))
    advance = stack.enter_context(app_ctx.terminal.progress(stream.head_seq, _EXPORTING))

    def tracked() -> Iterator[AuditEntry]:
        reached = 0
        for entry in stream.entries:
            advance(entry.seq - reached)
            reached = entry.seq
            yield entry

    return target.emit_rows(tracked(), columns=entry_columns())
