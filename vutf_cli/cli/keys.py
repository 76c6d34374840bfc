"""`vutf keys`: issue, list, inspect, revoke, delete, rotate, extend, re-scope, prune, verify keys.

The group, and the commands that change a key's life: create, revoke, delete,
rotate, extend, set-scopes, prune-expired.  Each command parses, calls one service
(``revoke`` and ``prune-expired`` two: a preview to confirm, then the change)
and renders.  The services document the decisions: default scopes and expiry,
rotation naming and grace (:mod:`vutf_cli.services.keys`), revocation
(:mod:`vutf_cli.services.key_revocation`), pruning
(:mod:`vutf_cli.services.key_pruning`), what is audited.

What the commands share (the KEY argument, the scope and expiry options, how
a key is rendered) is in :mod:`vutf_cli.cli.key_options`; how the plaintext
of a new key is shown once (``create``, ``rotate``: stdout or ``--secret-file``)
is in :mod:`vutf_cli.cli.key_plaintext`.  `list` and `show`
(:mod:`vutf_cli.cli.key_queries`) and `verify`
(:mod:`vutf_cli.cli.key_verification`) have modules of their own and are
registered here, in the order the help lists the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import AppContext, get_app
from vutf_cli.cli.key_options import (
    ExpiresAtOption,
    ExpiresInOption,
    KeyArgument,
    NoExpiryOption,
    ScopeOption,
    SecretFileOption,
    describe_key,
    emit_key_change,
    format_time,
    key_columns,
    key_record,
    time_or_never,
)
from vutf_cli.cli.key_plaintext import KeyDelivery
from vutf_cli.cli.key_queries import list_, show
from vutf_cli.cli.key_verification import verify
from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.domain.views import ApiKeyView

IfExistsOption = Annotated[
    bool,
    typer.Option(
        "--if-exists",
        help="Skip a KEY (or --user) that does not exist, saying so on stderr (exit 0).",
    ),
]

app = typer.Typer(
    help=(
        "Manage API keys: issue, list, revoke, rotate, verify.\n\n"
        "\b\nExamples:\n"
        "  vutf keys create --user alice --name ci --secret-file ci.key\n"
        "  vutf keys list --expiring-within 7d\n"
        "  vutf keys rotate vutf_AbC1234 --grace 24h\n"
        "  vutf keys verify --key-file ci.key"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


# -- commands -------------------------------------------------------------------------------
@app.command()
def create(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            metavar="USER",
            help="Owner: username, email or id (required; asked for on a terminal).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            metavar="NAME",
            help="Name, unique among the owner's keys (required; asked for on a terminal).",
        ),
    ] = None,
    scope: ScopeOption = None,
    expires_in: ExpiresInOption = None,
    expires_at: ExpiresAtOption = None,
    no_expiry: NoExpiryOption = False,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="Free text.")
    ] = None,
    secret_file: SecretFileOption = None,
    if_not_exists: Annotated[
        bool,
        typer.Option(
            "--if-not-exists",
            help="If USER has an active key NAME, show it (no secret) and exit 0.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow scopes USER does not hold (the actor must be a superuser; audited).",
        ),
    ] = False,
) -> None:
    """Issue an API key and print it once.

    The scopes must be ones USER holds through roles (vutf users show USER
    --permissions; a superuser holds all); --force overrides that when the
    acting user (--actor) is a superuser.  Verification narrows a key to
    what its owner holds at that moment anyway.

    Defaults: scope read, expiry in 90 days (--no-expiry for none).  If the
    key cannot be written out (closed pipe, full disk), exit 9 names it.
    With --if-not-exists an existing active key of that name is shown
    without its secret (it is never shown twice; -o json has "created":
    false and no "key") and --secret-file is not written; a warning names
    what differs from the request (scopes, expires_at, description).  A
    revoked or expired one is exit 4: `vutf keys delete` frees its name.

    \b
    Examples:
      vutf keys create --user alice --name ci --scope read,targets:write --expires-in 30d
      vutf keys create -u alice -n deploy --secret-file ~/.vutf-deploy.key
      vutf keys create -u alice -n bot --json | jq -er .key
      vutf keys create -u alice -n ci --secret-file ci.key --if-not-exists
    """
    from vutf_cli.services import keys as keys_service
    from vutf_cli.services.key_differences import key_differences

    app_ctx = get_app(ctx)
    user = app_ctx.required_value(user, option="--user", label="Owner (username, email or id)")
    name = app_ctx.required_value(name, option="--name", label="Key name")
    db = app_ctx.database()

    def report_existing(view: ApiKeyView) -> None:
        differences = key_differences(
            view,
            scopes=scope or (),
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
            description=description,
        )
        _report_existing(app_ctx, view, differences)

    if if_not_exists:
        # Looked up first: an existing key must not create (or remove) a secret file.
        found = keys_service.existing_key(db, user=user, name=name)
        if found is not None:
            report_existing(found)
            return
    with KeyDelivery(app_ctx, secret_file, verb="created") as deliver:
        issued = keys_service.create_key(
            db,
            user=user,
            name=name,
            scopes=scope or (),
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
            description=description,
            if_not_exists=if_not_exists,
            force=force,
        )
        if not issued.created:  # made meanwhile by someone else
            if deliver.target is not None:
                deliver.target.discard()
            report_existing(issued.api_key)
            return
        deliver(issued)
    deliver.report(issued)


def _report_existing(app_ctx: AppContext, view: ApiKeyView, differences: tuple[str, ...]) -> None:
    terminal = app_ctx.terminal
    terminal.notice(
        f"API key {view.name!r} of {view.username} already exists ({view.key_prefix}); "
        "left unchanged, no new secret (--if-not-exists)"
    )
    if differences:
        # Shown with -q too: a script would otherwise trust a key it did not get.
        terminal.warning(
            f"the existing API key {view.name!r} of {view.username} differs from the "
            "request in: " + ", ".join(differences)
        )
    # "created": false and no "key": `jq -er .key` fails instead of printing null.
    app_ctx.emit_change(key_record(view, created=False))


app.command("list")(list_)
app.command()(show)


@app.command()
def revoke(
    ctx: typer.Context,
    keys: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY]...", help="Keys (ids or prefixes).", show_default=False),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", metavar="USER", help="With --all: every key of this user."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every key of --user.")] = False,
    if_exists: IfExistsOption = False,
) -> None:
    """Revoke API keys, all or nothing.

    Asks first; without a terminal, --yes is required.  Every KEY is looked
    up before anything changes: one unknown KEY and no key is revoked (exit
    3; with --if-exists it is skipped).  Keys already revoked are reported
    as unchanged (exit 0).  A revoked key keeps its name until `vutf keys
    delete`.

    \b
    Examples:
      vutf keys revoke vutf_AbC1234 vutf_XyZ9876
      vutf --yes keys revoke --user alice --all
      vutf --yes keys revoke vutf_AbC1234 --if-exists
    """
    from vutf_cli.output import Column
    from vutf_cli.services import key_revocation as keys_service

    if all_ != (user is not None):
        raise InvalidInput("--user and --all go together: --user USER --all")
    refs = list(keys or [])
    app_ctx = get_app(ctx)
    db = app_ctx.database()
    plan = keys_service.preview_revoke(db, refs, user=user, if_exists=if_exists)
    if plan.revoked:
        lines = [f"about to revoke {len(plan.revoked)} API key(s):"]
        lines += [f"  {describe_key(view)}" for view in plan.revoked]
        app_ctx.terminal.notice("\n".join(lines))
        app_ctx.confirm(f"Revoke {len(plan.revoked)} API key(s)?")
        result = keys_service.revoke_keys(db, refs, user=user, if_exists=if_exists)
    else:
        result = plan
    terminal = app_ctx.terminal
    _report_missing(app_ctx, result.missing, "revoke")
    for view in result.unchanged:
        # A deleted key was revoked (or had expired) first: the state holds.
        already = "already deleted" if view.state == "deleted" else "already revoked"
        terminal.notice(f"{already} (unchanged): {describe_key(view)}")
    terminal.success(f"revoked {len(result.revoked)} API key(s)")
    rows = [key_record(v, changed=True) for v in result.revoked]
    rows += [key_record(v, changed=False) for v in result.unchanged]
    app_ctx.emit_changed_rows(rows, columns=[*key_columns(), Column("changed")])


@app.command()
def delete(
    ctx: typer.Context,
    keys: Annotated[
        list[str],
        typer.Argument(metavar="KEY...", help="Keys (ids or prefixes).", show_default=False),
    ],
    if_exists: IfExistsOption = False,
) -> None:
    """Delete API keys, all or nothing (working ones are revoked).

    A deleted key never works again and no longer holds its name, so a new
    key of that name can be issued; its audit history stays.  Asks first;
    without a terminal, --yes is required.  One unknown KEY and nothing is
    deleted (exit 3; with --if-exists it is skipped).  Keys already deleted
    are reported as unchanged (exit 0).

    \b
    Examples:
      vutf keys delete vutf_AbC1234
      vutf --yes keys delete vutf_AbC1234 --if-exists
    """
    from vutf_cli.output import Column
    from vutf_cli.services import key_revocation as keys_service

    app_ctx = get_app(ctx)
    db = app_ctx.database()
    plan = keys_service.preview_delete(db, keys, if_exists=if_exists)
    if plan.deleted:
        lines = [f"about to delete {len(plan.deleted)} API key(s):"]
        lines += [f"  {describe_key(view)}" for view in plan.deleted]
        app_ctx.terminal.notice("\n".join(lines))
        app_ctx.confirm(f"Delete {len(plan.deleted)} API key(s)?")
        result = keys_service.delete_keys(db, keys, if_exists=if_exists)
    else:
        result = plan
    terminal = app_ctx.terminal
    _report_missing(app_ctx, result.missing, "delete")
    for view in result.unchanged:
        terminal.notice(f"already deleted (unchanged): {describe_key(view)}")
    terminal.success(f"deleted {len(result.deleted)} API key(s)")
    rows = [key_record(v, changed=True) for v in result.deleted]
    rows += [key_record(v, changed=False) for v in result.unchanged]
    app_ctx.emit_changed_rows(rows, columns=[*key_columns(), Column("changed")])


def _report_missing(app_ctx: AppContext, missing: tuple[str, ...], what: str) -> None:
    for ref in missing:
        app_ctx.terminal.notice(f"no API key {ref!r}; nothing to {what} (--if-exists)")


@app.command()
def rotate(
    ctx: typer.Context,
    key: KeyArgument,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="Keep the old key working this long (24h); default: none.",
        ),
    ] = None,
    expires_in: ExpiresInOption = None,
    expires_at: ExpiresAtOption = None,
    no_expiry: NoExpiryOption = False,
    secret_file: SecretFileOption = None,
) -> None:
    """Replace a key by a new one; print the new key once.

    The new key has the same owner, name, scopes and description.  The old
    key is renamed "<name> (rotated <time>)" and stops working at once, or
    after --grace, once the new key is delivered; if the new key cannot be
    written out (exit 9), the old key keeps working.  The new key lives as
    long as the old one was meant to (counted from now), unless an expiry
    option is given.

    \b
    Examples:
      vutf keys rotate vutf_AbC1234 --grace 24h
      vutf keys rotate vutf_AbC1234 --secret-file ./new.key --json
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    db = app_ctx.database()
    with KeyDelivery(app_ctx, secret_file, verb="rotated") as deliver:
        # The old key's end is set only after `deliver` has delivered the new key.
        issued = keys_service.rotate_key(
            db,
            key,
            grace=grace,
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
            deliver=deliver,
        )
    replaced = issued.replaced
    if replaced is not None:
        app_ctx.terminal.notice(
            f"old key {replaced.key_prefix} renamed {replaced.name!r}; "
            f"it stops working at {format_time(replaced.expires_at)}"
        )
    deliver.report(issued)


@app.command()
def extend(
    ctx: typer.Context,
    key: KeyArgument,
    expires_in: ExpiresInOption = None,
    expires_at: ExpiresAtOption = None,
    no_expiry: NoExpiryOption = False,
) -> None:
    """Change a key's expiry.

    Give one of --expires-in (counted from now), --expires-at or --no-expiry.

    \b
    Examples:
      vutf keys extend vutf_AbC1234 --expires-in 90d
      vutf keys extend vutf_AbC1234 --expires-at 2030-01-01
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    change = keys_service.extend_key(
        app_ctx.database(),
        key,
        expires_in=expires_in,
        expires_at=expires_at,
        no_expiry=no_expiry,
    )
    app_ctx.terminal.notice(
        f"expiry of {change.api_key.key_prefix} changed from "
        f"{time_or_never(change.previous_expires_at)} to {time_or_never(change.api_key.expires_at)}"
    )
    emit_key_change(app_ctx, change.api_key)


@app.command("set-scopes")
def set_scopes(
    ctx: typer.Context,
    key: KeyArgument,
    scope: ScopeOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow scopes the owner does not hold (the actor must be a superuser; audited).",
        ),
    ] = False,
) -> None:
    """Replace a key's scopes (with scopes its owner holds).

    \b
    Examples:
      vutf keys set-scopes vutf_AbC1234 --scope read --scope targets:write
      vutf keys set-scopes vutf_AbC1234 -s read,sessions:*
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    change = keys_service.set_scopes(app_ctx.database(), key, scope or [], force=force)
    view = change.api_key
    if change.changed:
        app_ctx.terminal.notice(
            f"scopes of {view.key_prefix} changed from {', '.join(change.previous_scopes)} "
            f"to {', '.join(view.scopes)}"
        )
    else:
        app_ctx.terminal.notice(f"scopes of {view.key_prefix} unchanged")
    emit_key_change(app_ctx, view)


@app.command("prune-expired")
def prune_expired(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only keys expired or revoked at least this long ago.",
        ),
    ] = "30d",
) -> None:
    """Soft-delete keys that ended long ago.

    Keys expired or revoked more than --older-than ago are soft-deleted; the
    count is reported.  Asks first; without a terminal, --yes is required.

    \b
    Examples:
      vutf keys prune-expired
      vutf --yes keys prune-expired --older-than 7d --json | jq .pruned
    """
    from vutf_cli.services import key_pruning as keys_service

    app_ctx = get_app(ctx)
    db = app_ctx.database()
    plan = keys_service.preview_prune(db, older_than=older_than)
    if plan.candidates:
        app_ctx.terminal.notice(
            f"{len(plan.candidates)} API key(s) expired or revoked "
            f"before {format_time(plan.cutoff)}"
        )
        app_ctx.confirm(f"Soft-delete {len(plan.candidates)} API key(s)?")
        result = keys_service.prune_expired(db, older_than=older_than)
    else:
        result = keys_service.PruneResult(pruned=0, cutoff=plan.cutoff, key_ids=())
    app_ctx.terminal.success(f"pruned {result.pruned} API key(s)")
    app_ctx.emit_change(result)


app.command()(verify)
