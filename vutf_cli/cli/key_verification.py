"""`vutf keys verify`: check an API key read from stdin or ``--key-file`` (never argv).

Registered on the `vutf keys` group by :mod:`vutf_cli.cli.keys`, last, as the
help lists it; the decisions (what is checked before the database, what
``--record-usage`` and ``--no-record`` write) are in :mod:`vutf_cli.services.key_verification`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vutf_cli.cli.context import get_app, read_secret, stdin_is_tty

__all__ = ["verify"]


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
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Write nothing, not even the audit row of this attempt."),
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
    A malformed key is refused without contacting the database (and is not
    recorded).  Every other attempt, valid or refused, appends one
    api_key.use audit row with the owner and the reason; --record-usage also
    counts the use, --no-record writes nothing at all.

    \b
    Examples:
      printf '%s' "$KEY" | vutf keys verify
      vutf keys verify --key-file ./ci.key --require-scope targets:write --json
    """
    from vutf_cli.services import key_verification as keys_service

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
        app_ctx.database(check_schema=False),
        plaintext,
        required_scope=require_scope,
        record_usage=record_usage,
        record=not no_record,
    )
    app_ctx.terminal.notice(f"API key {result.key_prefix} is valid")
    app_ctx.terminal.emit_object(result)
