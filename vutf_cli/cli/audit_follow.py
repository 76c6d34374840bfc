"""`vutf audit follow`: print new audit entries as they are appended, like tail -f.

The polling, its snapshots and the outage handling are in
``vutf_cli.services.audit_follow``; here is how the entries reach stdout:
one line each for -o table (a table cannot stream), otherwise the renderer,
flushed after every entry.  Registered on the `vutf audit` group in
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
    StatusOption,
    UserOption,
    build_query,
    entry_columns,
)
from vutf_cli.cli.context import get_app

if TYPE_CHECKING:
    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output import Terminal


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
    from vutf_cli.services import audit_follow

    app_ctx = get_app(ctx)
    terminal = app_ctx.terminal
    query = build_query(
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
        following = audit_follow.follow(
            app_ctx.database(),
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
            terminal.emit_rows(_flushed(terminal, following.entries), columns=entry_columns())
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: not an error.
        with contextlib.suppress(OSError, ValueError):
            terminal.stdout.flush()


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
