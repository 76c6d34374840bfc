"""`vutf audit follow`: print new audit entries as they are appended, like tail -f.

The polling, its snapshots, where it starts (``-n``, ``--since``,
``--since-seq``) and the outage handling are in
``vutf_cli.services.audit_follow``; here is how the entries reach stdout.
The columns are those of `vutf audit list` (:func:`entry_columns`), written
by the renderers `audit list` uses (``Terminal.emit_stream``), each entry
flushed as it comes.  A table fits the terminal as the list's does (same
drop order, nothing wraps at 80 columns): it is measured on recent entries
(``Following.sample``) and each later one widens it if needed.  Registered
on the `vutf audit` group in ``vutf_cli.cli.audit``.

Ctrl-C (or SIGTERM) is how a follow ends, so it ends with exit 0, not the
130 of an interrupted command (README, "Exit codes").
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
    StatusOption,
    UserOption,
    build_query,
    entry_columns,
)
from vutf_cli.cli.context import get_app
from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.domain.views import AuditEntry

# -n when none of -n, --since, --since-seq is given: as tail and journalctl.
DEFAULT_LAST = 10


def follow(
    ctx: typer.Context,
    actor: ActorOption = None,
    user: UserOption = None,
    action: ActionOption = None,
    resource_type: ResourceTypeOption = None,
    resource_id: ResourceIdOption = None,
    status: StatusOption = None,
    lines: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--lines",
            metavar="N",
            help=f"Show the last N entries first (default {DEFAULT_LAST}; 0: none).",
        ),
    ] = None,
    since: SinceOption = None,
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
    """Print audit entries as they are appended, like tail -f.

    Shows the last 10 matching entries first (-n N; -n 0 none), or every one
    from --since TIME or --since-seq SEQ on, then each new entry as soon as
    it is seen, with the columns of `vutf audit list` (-o jsonl: one JSON
    object a line).  --max-events counts the entries shown first too.  While
    the database is unreachable a warning goes to stderr and polling goes
    on.  Ctrl-C (or SIGTERM) is how it ends: exit code 0.

    \b
    Examples:
      vutf -o jsonl audit follow --action 'user.*' | jq -c .
      vutf audit follow --status failure -n 50
      vutf audit follow --since '1 hour ago'
      vutf -o jsonl audit follow -n 0 --max-events 1 --timeout 60
    """
    from vutf_cli.services import audit_follow

    app_ctx = get_app(ctx)
    terminal = app_ctx.terminal
    if lines is not None and (since is not None or since_seq is not None):
        raise InvalidInput("-n and --since/--since-seq both say where to start; give one of them")
    query = build_query(
        app_ctx,
        actor=actor,
        user=user,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status=status,
        since=since,
        until=None,
    )
    columns = entry_columns()
    try:
        following = audit_follow.follow(
            app_ctx.database(),
            query,
            since_seq=since_seq,
            last=DEFAULT_LAST if lines is None else lines,
            interval=interval,
            max_events=max_events,
            timeout=timeout,
            on_outage=lambda error: terminal.warning(f"{error.message}; still following, retrying"),
            on_recovery=lambda: terminal.notice("database reachable again; following"),
        )
        first = f"; {following.shown_first} shown first" if following.shown_first else ""
        terminal.notice(
            f"following the audit log after seq {following.after_seq}{first} (Ctrl-C stops)"
        )
        terminal.emit_stream(
            _until_interrupted(following.entries), columns=columns, sample=following.sample
        )
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: not an error.
        with contextlib.suppress(OSError, ValueError):
            terminal.stdout.flush()


def _until_interrupted(entries: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
    """``entries`` until Ctrl-C: ending the stream (not raising) lets -o json close its array."""
    try:
        yield from entries
    except KeyboardInterrupt:
        return
