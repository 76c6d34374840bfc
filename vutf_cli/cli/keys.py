"""`vutf keys`: issue, list, inspect, revoke, rotate, extend, re-scope, prune and verify API keys.

Each command parses, calls one service (``revoke`` and ``prune-expired`` two:
a preview to confirm, then the change) and renders.  The service module,
``vutf_cli.services.keys``, documents the decisions: default scopes and
expiry, rotation naming and grace, what is audited.

The plaintext key is printed once, by ``create`` and ``rotate``: in the
table under a "store it now" title (plus a warning on stderr), as the ``key``
field of the JSON object, or, with ``--secret-file PATH``, only into a new
file of mode 0600 (then stdout carries the metadata and a ``secret_file``
field instead of ``key``).  An existing PATH is never overwritten (exit 4).
``verify`` reads the key from stdin or ``--key-file`` (never argv).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.cli.context import AppContext, get_app, read_secret, stdin_is_tty
from vutf_cli.errors import Conflict, InternalError, InvalidInput

if TYPE_CHECKING:
    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output import Column
    from vutf_cli.services.keys import IssuedKey

app = typer.Typer(
    help="Manage API keys: create, list, show, revoke, rotate, extend, set-scopes, verify.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

STORE_IT_NOW = "store it now, it will not be shown again"
SECRET_FILE_MODE = 0o600

# Table columns of `keys list`, in display order; json/jsonl/csv carry every
# ApiKeyView field (never the digest, which no view holds).
_TABLE_COLUMNS = (
    ("key_prefix", "prefix"),
    ("name", "name"),
    ("username", "owner"),
    ("scopes", "scopes"),
    ("created_at", "created"),
    ("expires_at", "expires"),
    ("last_used_at", "last used"),
    ("usage_count", "uses"),
    ("state", "state"),
)
# What the key-value table of one key shows (machine formats get every field).
_DETAIL_FIELDS = [
    "id",
    "key_prefix",
    "name",
    "username",
    "user_id",
    "scopes",
    "state",
    "description",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "last_used_ip",
    "usage_count",
]

# -- shared options ---------------------------------------------------------------------
KeyArgument = Annotated[
    str, typer.Argument(metavar="KEY", help="Key id, or its prefix (e.g. vutf_AbC1234).")
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        "-s",
        metavar="SCOPE",
        help="Scope to grant; repeat it or separate with commas (read,write,targets:*).",
        show_default=False,
    ),
]
ExpiresInOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", metavar="DURATION", help="Expire after this long from now (90d, 12h, 2w)."
    ),
]
ExpiresAtOption = Annotated[
    str | None,
    typer.Option(
        "--expires-at", metavar="TIME", help="Expire at this ISO 8601 time (no zone means UTC)."
    ),
]
NoExpiryOption = Annotated[bool, typer.Option("--no-expiry", help="Never expire.")]
SecretFileOption = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        metavar="PATH",
        help="Write the key to this NEW file (mode 0600) instead of stdout.",
        dir_okay=False,
    ),
]


# -- rendering helpers ------------------------------------------------------------------
def _time(value: Any, *, none: str = "") -> str:
    if not isinstance(value, datetime):
        return none
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _never(value: Any) -> str:
    return _time(value, none="never")


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "expires_at": _never,
    "last_used_at": _never,
    "created_at": _time,
}


def _key_columns() -> list[Column]:
    from vutf_cli.domain.views import ApiKeyView
    from vutf_cli.output import Column

    shown = [Column(key, header, formatter=_FORMATTERS.get(key)) for key, header in _TABLE_COLUMNS]
    shown_keys = {key for key, _ in _TABLE_COLUMNS}
    hidden = [
        Column(f.name, in_table=False)
        for f in dataclasses.fields(ApiKeyView)
        if f.name not in shown_keys and f.name != "id"
    ]
    return [Column("id", in_table=False), *shown, *hidden]


def _record(view: ApiKeyView, **extra: Any) -> dict[str, Any]:
    """Every field of ``view`` (plus ``extra``) as one flat mapping."""
    return {**{f.name: getattr(view, f.name) for f in dataclasses.fields(view)}, **extra}


def _emit_key(app_ctx: AppContext, view: ApiKeyView, *, title: str | None = None) -> None:
    terminal = app_ctx.terminal
    if terminal.output_format == "table":
        terminal.emit_object(view, fields=_DETAIL_FIELDS, title=title)
    else:
        terminal.emit_object(view)


def _describe(view: ApiKeyView) -> str:
    return f"{view.key_prefix}  {view.name!r} of {view.username}  ({view.state})"


# -- the secret file ----------------------------------------------------------------------
class _SecretFile:
    """A file created exclusively (O_EXCL, mode 0600) before the key exists.

    Created first so that a bad path fails before any key is issued; removed
    again if issuing fails, so no empty file is left behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().absolute()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, SECRET_FILE_MODE)
        except FileExistsError:
            raise Conflict(
                f"{self.path} already exists; a key is only written to a new file",
                hint="choose another path, or remove the old file first",
            ) from None
        except OSError as exc:
            raise InvalidInput(f"cannot create secret file {self.path}: {exc.strerror}") from None
        # The mode given to open() is filtered by the umask; make it exact.
        os.fchmod(self._fd, SECRET_FILE_MODE)

    def write(self, secret: str) -> None:
        try:
            data = (secret + "\n").encode("utf-8")
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        finally:
            os.close(self._fd)

    def discard(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


def _issue(
    secret_file: Path | None, issue: Callable[[], IssuedKey]
) -> tuple[IssuedKey, _SecretFile | None]:
    target = _SecretFile(secret_file) if secret_file is not None else None
    try:
        issued = issue()
    except BaseException:
        if target is not None:
            target.discard()
        raise
    if target is not None:
        try:
            target.write(issued.plaintext)
        except OSError as exc:
            prefix = issued.api_key.key_prefix
            raise InternalError(
                f"API key {prefix} was issued, but writing it to {target.path} failed: "
                f"{exc.strerror}",
                hint=f"revoke it (vutf keys revoke {prefix}) and try again",
            ) from None
    return issued, target


def _emit_issued(
    app_ctx: AppContext,
    issued: IssuedKey,
    target: _SecretFile | None,
    *,
    verb: str,
    extra: dict[str, Any] | None = None,
) -> None:
    terminal = app_ctx.terminal
    view = issued.api_key
    extra = dict(extra or {})
    if target is None:
        secret: dict[str, Any] = {"key": issued.plaintext}
        title = f"API key {verb}: {STORE_IT_NOW}"
    else:
        secret = {"secret_file": str(target.path)}
        title = f"API key {verb}; the key is in secret_file (mode 0600)"
    if terminal.output_format == "table":
        record = {**secret, **{name: getattr(view, name) for name in _DETAIL_FIELDS}, **extra}
        terminal.emit_object(record, title=title)
        if target is None:
            terminal.warning(f"this is the only time the key is shown: {STORE_IT_NOW}")
        else:
            terminal.notice(f"key written to {target.path}")
    else:
        terminal.emit_object({**secret, **_record(view), **extra})


# -- commands -------------------------------------------------------------------------------
@app.command()
def create(
    ctx: typer.Context,
    user: Annotated[
        str, typer.Option("--user", "-u", metavar="USER", help="Owner: username, email or id.")
    ],
    name: Annotated[
        str,
        typer.Option("--name", "-n", metavar="NAME", help="Name, unique among the owner's keys."),
    ],
    scope: ScopeOption = None,
    expires_in: ExpiresInOption = None,
    expires_at: ExpiresAtOption = None,
    no_expiry: NoExpiryOption = False,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="Free text.")
    ] = None,
    secret_file: SecretFileOption = None,
) -> None:
    """Issue an API key and print it once.

    Defaults: scope read, expiry in 90 days (--no-expiry for none).

    \b
    Examples:
      vutf keys create --user alice --name ci --scope read,targets:write --expires-in 30d
      vutf keys create -u alice -n deploy --secret-file ~/.vutf-deploy.key
      vutf keys create -u alice -n bot --json | jq -r .key
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    rt = app_ctx.runtime()
    issued, target = _issue(
        secret_file,
        lambda: keys_service.create_key(
            rt,
            user=user,
            name=name,
            scopes=scope or (),
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
            description=description,
        ),
    )
    _emit_issued(app_ctx, issued, target, verb="created")


@app.command("list")
def list_(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", "-u", metavar="USER", help="Only keys of this user.")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Usable keys (the default).")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="Expired keys.")] = False,
    revoked: Annotated[bool, typer.Option("--revoked", help="Revoked keys.")] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every key, including pruned (deleted) ones.")
    ] = False,
    expiring_within: Annotated[
        str | None,
        typer.Option(
            "--expiring-within",
            metavar="DURATION",
            help="Only keys expiring within this duration (7d).",
        ),
    ] = None,
    unused_for: Annotated[
        str | None,
        typer.Option(
            "--unused-for", metavar="DURATION", help="Only keys not used for this long (90d)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=1000, help="Keys per page (1-1000).")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", metavar="CURSOR", help="Continue after the page that printed this cursor."
        ),
    ] = None,
) -> None:
    """List API keys (default: the active ones).

    Oldest first: prefix, name, owner, scopes, dates, uses and state in the
    table; every field with -o json, jsonl or csv (never the digest).

    Pages hold --limit keys; when there are more, the cursor of the next page
    is printed on stderr as "next cursor: ..." (even with --quiet); pass it
    to --cursor with the same filters.

    \b
    Examples:
      vutf keys list --user alice
      vutf keys list --expiring-within 7d --json | jq -r '.[].key_prefix'
      vutf keys list --all --unused-for 90d -o csv
    """
    from vutf_cli.services import keys as keys_service

    chosen = [
        state
        for state, flag in (
            ("active", active),
            ("expired", expired),
            ("revoked", revoked),
            ("all", all_),
        )
        if flag
    ]
    if len(chosen) > 1:
        raise InvalidInput("--active, --expired, --revoked and --all are mutually exclusive")
    state = chosen[0] if chosen else "active"
    app_ctx = get_app(ctx)
    page = keys_service.list_keys(
        app_ctx.runtime(),
        user=user,
        state=state,
        expiring_within=expiring_within,
        unused_for=unused_for,
        limit=limit,
        cursor=cursor,
    )
    hint = "" if state == "all" else " (--all shows keys in every state)"
    app_ctx.terminal.emit_rows(
        page.items, columns=_key_columns(), empty_notice=f"no {state} API keys found{hint}"
    )
    if page.next_cursor is not None:
        # Written even with --quiet (as `vutf users list` does): a script needs it.
        app_ctx.terminal.stderr.write(f"next cursor: {page.next_cursor}\n")
        app_ctx.terminal.stderr.flush()


@app.command()
def show(ctx: typer.Context, key: KeyArgument) -> None:
    """Show one API key by id or prefix.

    The key itself is never shown again: it is not stored.

    \b
    Examples:
      vutf keys show vutf_AbC1234
      vutf keys show 0b6f1c1e-2f3a-4c55-9a7e-1d2b3c4d5e6f --json
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    _emit_key(app_ctx, keys_service.show_key(app_ctx.runtime(), key))


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
) -> None:
    """Revoke API keys, all or nothing.

    Asks first; without a terminal, --yes is required.  Every KEY is looked
    up before anything changes: one unknown KEY and no key is revoked (exit
    3).  Keys already revoked are reported as unchanged.

    \b
    Examples:
      vutf keys revoke vutf_AbC1234 vutf_XyZ9876
      vutf --yes keys revoke --user alice --all
    """
    from vutf_cli.output import Column
    from vutf_cli.services import keys as keys_service

    if all_ != (user is not None):
        raise InvalidInput("--user and --all go together: --user USER --all")
    refs = list(keys or [])
    app_ctx = get_app(ctx)
    rt = app_ctx.runtime()
    plan = keys_service.preview_revoke(rt, refs, user=user)
    if plan.revoked:
        lines = [f"about to revoke {len(plan.revoked)} API key(s):"]
        lines += [f"  {_describe(view)}" for view in plan.revoked]
        app_ctx.terminal.notice("\n".join(lines))
        app_ctx.confirm(f"Revoke {len(plan.revoked)} API key(s)?")
        result = keys_service.revoke_keys(rt, refs, user=user)
    else:
        result = plan
    terminal = app_ctx.terminal
    for view in result.unchanged:
        terminal.notice(f"already revoked (unchanged): {_describe(view)}")
    terminal.notice(f"revoked {len(result.revoked)} API key(s)")
    rows = [_record(v, changed=True) for v in result.revoked]
    rows += [_record(v, changed=False) for v in result.unchanged]
    terminal.emit_rows(rows, columns=[*_key_columns(), Column("changed")])


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
    after --grace.  The new key lives as long as the old one was meant to
    (counted from now), unless an expiry option is given.

    \b
    Examples:
      vutf keys rotate vutf_AbC1234 --grace 24h
      vutf keys rotate vutf_AbC1234 --secret-file ./new.key --json
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    rt = app_ctx.runtime()
    issued, target = _issue(
        secret_file,
        lambda: keys_service.rotate_key(
            rt,
            key,
            grace=grace,
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
        ),
    )
    replaced = issued.replaced
    extra: dict[str, Any] = {}
    if replaced is not None:
        extra = {
            "replaced_key_id": replaced.id,
            "replaced_key_name": replaced.name,
            "replaced_key_expires_at": replaced.expires_at,
        }
        app_ctx.terminal.notice(
            f"old key {replaced.key_prefix} renamed {replaced.name!r}; "
            f"it stops working at {_time(replaced.expires_at)}"
        )
    _emit_issued(app_ctx, issued, target, verb="rotated", extra=extra)


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
        app_ctx.runtime(),
        key,
        expires_in=expires_in,
        expires_at=expires_at,
        no_expiry=no_expiry,
    )
    app_ctx.terminal.notice(
        f"expiry of {change.api_key.key_prefix} changed from "
        f"{_never(change.previous_expires_at)} to {_never(change.api_key.expires_at)}"
    )
    _emit_key(app_ctx, change.api_key)


@app.command("set-scopes")
def set_scopes(ctx: typer.Context, key: KeyArgument, scope: ScopeOption = None) -> None:
    """Replace a key's scopes with the given ones.

    \b
    Examples:
      vutf keys set-scopes vutf_AbC1234 --scope read --scope targets:write
      vutf keys set-scopes vutf_AbC1234 -s read,sessions:*
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    change = keys_service.set_scopes(app_ctx.runtime(), key, scope or [])
    view = change.api_key
    if change.changed:
        app_ctx.terminal.notice(
            f"scopes of {view.key_prefix} changed from {', '.join(change.previous_scopes)} "
            f"to {', '.join(view.scopes)}"
        )
    else:
        app_ctx.terminal.notice(f"scopes of {view.key_prefix} unchanged")
    _emit_key(app_ctx, view)


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
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    rt = app_ctx.runtime()
    plan = keys_service.preview_prune(rt, older_than=older_than)
    if plan.candidates:
        app_ctx.terminal.notice(
            f"{len(plan.candidates)} API key(s) expired or revoked before {_time(plan.cutoff)}"
        )
        app_ctx.confirm(f"Soft-delete {len(plan.candidates)} API key(s)?")
        result = keys_service.prune_expired(rt, older_than=older_than)
    else:
        result = keys_service.PruneResult(pruned=0, cutoff=plan.cutoff, key_ids=())
    app_ctx.terminal.notice(f"pruned {result.pruned} API key(s)")
    app_ctx.terminal.emit_object(result)


@app.command()
def verify(
    ctx: typer.Context,
    require_scope: Annotated[
        str | None,
        typer.Option(
            "--require-scope", metavar="SCOPE", help="Also require this scope (exit 5 if missing)."
        ),
    ] = None,
    record_usage: Annotated[
        bool,
        typer.Option("--record-usage", help="Count this as a use (last used, usage count)."),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", metavar="PATH", help="Read the key from this file instead of stdin."
        ),
    ] = None,
) -> None:
    """Check an API key read from stdin (exit 0 valid, 5 refused).

    Prints the owner, key id, scopes and expiry of a usable key; otherwise
    exits 5 with the reason: malformed, checksum mismatch, unknown, expired,
    revoked, deleted, owner inactive, owner deleted, lacks the required scope.
    A malformed key is refused without contacting the database.  Nothing is
    written unless --record-usage is given.

    \b
    Examples:
      printf '%s' "$KEY" | vutf keys verify
      vutf keys verify --key-file ./ci.key --require-scope targets:write --json
    """
    from vutf_cli.services import keys as keys_service

    app_ctx = get_app(ctx)
    plaintext = read_secret(
        what="API key",
        from_stdin=key_file is None and not stdin_is_tty(),
        from_file=key_file,
        confirm=False,
        stdin_flag="stdin",
        file_flag="--key-file",
    )
    # No schema check here: the service checks the key's format before the
    # database is touched at all.
    result = keys_service.verify_key(
        app_ctx.runtime(check_schema=False),
        plaintext,
        required_scope=require_scope,
        record_usage=record_usage,
    )
    app_ctx.terminal.notice(f"API key {result.key_prefix} is valid")
    app_ctx.terminal.emit_object(result)
