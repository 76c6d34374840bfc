"""What the `vutf audit` commands share: the filter options, the query they make, the columns.

The actor filter is ``--by-actor``.  ``--actor`` is the global option (who
is acting, for the audit rows a command writes), hoisted from anywhere on the
line, and keeps that one meaning wherever it stands.  Until vutf 0.1 an
``--actor`` on an audit command filtered; a script still passing it would now
silently get every actor's entries, so there it is refused (exit 2) with a
hint naming ``--by-actor``.  ``VUTF_ACTOR`` and the config file never filter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.cli.context import AppContext
    from vutf_cli.output import Column
    from vutf_cli.services.audit import AuditQuery

NO_ENTRIES = "no audit entries found"
_PLAIN_NAME = re.compile(r"[\w.@+-]{1,64}", re.ASCII)

ActorOption = Annotated[
    str | None,
    typer.Option(
        "--by-actor",
        metavar="ACTOR",
        help="Only entries by this actor (exact; --actor is who is acting, never a filter).",
    ),
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
    typer.Option("--status", metavar="STATUS", help="Only this status: [success|failure|error]."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help=(
            "From TIME on: 2h, '1 hour ago', 09:00 (today), yesterday, 2026-05-01, "
            "ISO 8601 (no zone: VUTF_TIMEZONE if set, else UTC)."
        ),
    ),
]
SinceSeqOption = Annotated[
    int | None,
    typer.Option(
        "--since-seq",
        metavar="SEQ",
        min=1,
        help="Only entries from seq SEQ on (vutf audit head names the last).",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="Before TIME (same forms as --since)."),
]


def entry_columns() -> list[Column]:
    """The columns of an audit entry; -o table shows only the short ones."""
    import dataclasses

    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output.columns import AUDIT_TABLE

    return AUDIT_TABLE.columns(field.name for field in dataclasses.fields(AuditEntry))


def refuse_actor_as_filter(app_ctx: AppContext) -> None:
    """--actor on the command line of a command that filters by actor (module docstring)."""
    actor = app_ctx.options.actor
    if actor is not None:
        # The value is echoed only when it is plainly a name (it may be 10 MB or hold a NUL).
        shown = actor if _PLAIN_NAME.fullmatch(actor) else "NAME"
        raise InvalidInput(
            "--actor names who is acting, not whose entries to show",
            hint=f"filter with --by-actor {shown}",
        )


def build_query(
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
    since_seq: int | None = None,
) -> AuditQuery:
    """The filters as given, checked by the service (InvalidInput, exit 2)."""
    from vutf_cli.services import audit as audit_service

    refuse_actor_as_filter(app_ctx)
    query = audit_service.build_query(
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
    if query.since is not None and query.since > datetime.now(UTC):
        # Not an error (exit 0, an empty result, as any filter that matches
        # nothing), but a typo such as a zone-less time read as UTC shows here.
        shown = query.since.isoformat().replace("+00:00", "Z")
        app_ctx.terminal.notice(f"--since is in the future ({shown}): nothing can match yet")
    return query
