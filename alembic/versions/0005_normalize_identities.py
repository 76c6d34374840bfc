"""Stored usernames and emails rewritten to their normalized identity form.

Revision ID: 0005_normalize_identities
Revises: 0004_roles
Create Date: 2026-12-07

Before the identity rule (NFKC before the case-insensitive rule), an email's
local part was stored in whatever Unicode form it was typed (full-width,
NFD), and every lookup now compares ``lower(column)`` with the NFKC identity
key: such a user could not be found even by their own spelling, and a second
user spelled alike could be created.  This revision rewrites every row
(deleted ones too) to the stored form of today's entry points: the username
NFKC, the email NFKC, stripped and lower-cased.

The rule is restated here, frozen, rather than imported from
``vutf_cli.domain.validation``: a migration must do the same thing whatever
later versions make of the rule.  Two live users whose identities would
become one are never merged: the upgrade is refused (exit 8: the schema
stays at 0004_roles), naming them, and nothing is changed.  Downgrade is a
no-op (the old spellings are not kept, and nothing depends on them).  No
audit row is written: a migration is not a command on the data (0004_roles).
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from vutf_cli.errors import SchemaOutdated

revision: str = "0005_normalize_identities"
down_revision: str | None = "0004_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USERS = sa.table(
    "users",
    sa.column("id"),
    sa.column("username", sa.String()),
    sa.column("email", sa.String()),
    sa.column("is_deleted", sa.Boolean()),
)
_SHOWN_CLASHES = 10


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def _identity(value: str) -> str:
    # identity_key as of this revision: NFKC, stripped, lower-cased, NFKC again.
    return _nfkc(_nfkc(value).strip().lower())


def upgrade() -> None:
    if context.is_offline_mode():
        # Which rows change cannot be known without reading them.
        op.execute(
            "-- 0005_normalize_identities rewrites stored usernames and emails to their "
            "normalized form; only an online `vutf db upgrade` does that"
        )
        return
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_USERS.c.id, _USERS.c.username, _USERS.c.email, _USERS.c.is_deleted).order_by(
            _USERS.c.username, _USERS.c.id
        )
    ).all()
    holders: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        if not row.is_deleted:  # deleted rows hold no identity (the unique indexes agree)
            holders["username", _identity(row.username)].append(f"{row.id} {row.username!r}")
            holders["email", _identity(row.email)].append(f"{row.id} {row.email!r}")
    clashes = [
        f"{' and '.join(names)} would all be {what} {spelled!r}"
        for (what, spelled), names in sorted(holders.items())
        if len(names) > 1
    ]
    if clashes:
        shown = "; ".join(clashes[:_SHOWN_CLASHES])
        more = len(clashes) - _SHOWN_CLASHES
        raise SchemaOutdated(
            f"migration 0005_normalize_identities refused: {len(clashes)} "
            f"{'identity is' if len(clashes) == 1 else 'identities are'} held by several "
            f"live users once normalized (NFKC, case-insensitive): {shown}"
            + (f"; and {more} more" if more > 0 else ""),
            hint="rename or delete all but one user of each (with the vutf that runs at "
            "0004_roles, or SQL), then run `vutf db upgrade` again; nothing was changed",
        )
    for row in rows:
        username, email = _nfkc(row.username), _identity(row.email)
        if (username, email) != (row.username, row.email):
            connection.execute(
                sa.update(_USERS)
                .where(_USERS.c.id == row.id)
                .values(username=username, email=email)
            )


def downgrade() -> None:
    # The normalized spellings are valid at every earlier revision too.
    pass
