"""`vutf audit`: list, show, follow, export, verify, head and stats over the audit log.

Each command parses, makes one service call and renders; the decisions
(filters, index-served query shapes, cursors, snapshots, polling) are in
``vutf_cli.services.audit``.  Services are imported inside the commands so
that ``vutf --help`` never imports SQLAlchemy.  The filter options the
commands share are in ``vutf_cli.cli.audit_options``; `follow` and `export`
have modules of their own and are registered here, in the order the help
lists the commands.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vutf_cli.cli.audit_export import export
from vutf_cli.cli.audit_follow import follow
from vutf_cli.cli.audit_options import (
    NO_ENTRIES,
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
from vutf_cli.cli.context import get_app
from vutf_cli.cli.list_options import (
    AllOption,
    CursorOption,
    FieldsOption,
    LimitOption,
    NoHeadersOption,
    NoPagerOption,
    apply_view,
    emit_listing,
    page_limit,
)
from vutf_cli.output_formats import OUTPUT_FORMATS

app = typer.Typer(
    help=(
        "Read and check the audit log: list, follow, export, verify.\n\n"
        "\b\nExamples:\n"
        "  vutf audit list --since 1d --by-actor alice\n"
        "  vutf -o jsonl audit follow --status failure\n"
        "  vutf audit export --output-file audit.jsonl\n"
        '  anchor=$(vutf audit head) && vutf audit verify --anchor "$anchor"'
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
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
    since_seq: SinceSeqOption = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Oldest first.")] = False,
    limit: LimitOption = None,
    cursor: CursorOption = None,
    all_rows: AllOption = False,
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """List audit entries, newest first: all for json, jsonl, csv.

    A table shows a page (see --limit and --all).

    When rows are left out (a table's page, or --limit), "next cursor:
    CURSOR" is printed on stderr (even with --quiet); pass it back with
    --cursor (and the same filters) for the next page.  Entries appended
    meanwhile never shift the pages.

    \b
    Examples:
      vutf audit list --since 2h --action 'user.*'
      vutf audit list --user alice --status failure --json
      vutf audit list --limit 500 --cursor dnV0Zi1hdWRpdC0xOmQ6NTAx
      vutf audit list --since 1d --all
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
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
    listing = audit_service.stream_entries(
        app_ctx.database(),
        query,
        descending=not reverse,
        cursor=cursor,
        limit=page_limit(app_ctx, limit=limit, all_rows=all_rows),
    )
    emit_listing(app_ctx, listing, columns=entry_columns(), empty_notice=NO_ENTRIES, noun="entries")


@app.command()
def show(
    ctx: typer.Context,
    seq_or_id: Annotated[
        str, typer.Argument(metavar="SEQ_OR_ID", help="The entry's seq number or its id.")
    ],
    fields: FieldsOption = None,
    no_headers: NoHeadersOption = False,
    no_pager: NoPagerOption = False,
) -> None:
    """Show one audit entry in full, with its changes and metadata.

    \b
    Examples:
      vutf audit show 42
      vutf audit show 42 --json | jq .changes
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    apply_view(app_ctx, fields=fields, no_headers=no_headers, no_pager=no_pager)
    entry = audit_service.show(app_ctx.database(), seq_or_id)
    app_ctx.terminal.emit_object(entry, title=f"audit entry {entry.seq}")


# -- follow, export ------------------------------------------------------------------------
app.command()(follow)
app.command()(export)


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
    from vutf_cli.services import audit_verify

    app_ctx = get_app(ctx)
    recorded = None if anchor is None else audit_verify.parse_anchor(anchor)
    result = audit_verify.verify(app_ctx.database(), since_seq=since_seq, anchor=recorded)
    app_ctx.terminal.emit_object(result, fields=_VERIFY_FIELDS, title="audit chain")
    if not result.ok:
        raise audit_verify.chain_error(result)
    app_ctx.terminal.notice(f"audit chain intact: {result.checked} entries checked")


@app.command()
def head(ctx: typer.Context) -> None:
    """Print the head of the chain as SEQ:HASH, to record somewhere else.

    An empty log prints 0 and the genesis hash (64 zeros).  Pass a recorded
    head to `vutf audit verify --anchor` later to detect truncation.  The
    line is printed whatever VUTF_OUTPUT or the config file say; -o on the
    command line gives a record {seq, row_hash} instead.

    \b
    Examples:
      vutf audit head >> /secure/audit-heads.txt
      vutf audit head --json | jq -r .row_hash
    """
    from vutf_cli.services import audit as audit_service

    app_ctx = get_app(ctx)
    fmt = app_ctx.raw_output_format(OUTPUT_FORMATS, prints="SEQ:HASH")
    current = audit_service.head(app_ctx.database())
    terminal = app_ctx.terminal
    if fmt == "table":
        # A plain line whatever VUTF_OUTPUT says, so that $(vutf audit head) is the anchor.
        terminal.stdout.write(current.anchor + "\n")
        terminal.stdout.flush()
    else:
        # Asked for with -o on the command line, which the terminal's format follows.
        terminal.emit_object(current, fields=["seq", "row_hash"])


@app.command()
def stats(
    ctx: typer.Context,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            metavar="DIMENSION",
            help="Group by [action|actor|resource-type|status|day] (day: in UTC).",
        ),
    ] = "action",
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Count audit entries by action, actor, type, status or day.

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
    result = audit_service.stats(app_ctx.database(), by=dimension, query=query)
    rows: list[dict[str, Any]] = result.rows()
    app_ctx.terminal.emit_rows(
        rows, columns=[Column(result.dimension), Column("count")], empty_notice=NO_ENTRIES
    )
