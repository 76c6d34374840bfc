"""What the `vutf audit` commands share: the filter options, the query they make, the columns.

``--actor`` is also a global option (who is acting, for the audit rows a
command writes), and global options are taken from anywhere on the line.
The audit commands write no audit rows, so there an ``--actor`` given on the
command line is always the filter, wherever it stands; ``VUTF_ACTOR`` and the
config file never filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vutf_cli.cli.context import AppContext
    from vutf_cli.output import Column
    from vutf_cli.services.audit import AuditQuery

NO_ENTRIES = "no audit entries found"
_TABLE_FIELDS = frozenset(
    {"seq", "created_at", "actor", "action", "resource_type", "resource_id", "status"}
)

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


def entry_columns() -> list[Column]:
    """The columns of an audit entry; -o table shows only the short ones."""
    import dataclasses

    from vutf_cli.domain.views import AuditEntry
    from vutf_cli.output import Column

    return [
        Column(field.name, in_table=field.name in _TABLE_FIELDS)
        for field in dataclasses.fields(AuditEntry)
    ]


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
) -> AuditQuery:
    """The filters as given, checked by the service (InvalidInput, exit 2)."""
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
