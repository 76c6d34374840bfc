"""Failed-login counting and lockout for users; the pepper fingerprint of API keys.

Revision ID: 0003_login_lockout
Revises: 0002_audit_chain_link
Create Date: 2026-12-07

``failed_login_count`` counts failed password checks inside the current
window (it is reset by a successful login or ``vutf users unlock``);
``last_failed_login_at`` starts that window and ``locked_until`` ends a
lockout.  ``pepper_fingerprint`` names the key pepper a key's hash was made
with (a keyed digest of the pepper, never the pepper), so a key that fails
only because the configured pepper changed can be told apart from a wrong key.
Keys made before this revision have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vutf_cli.db.types import UTCDateTime

revision: str = "0003_login_lockout"
down_revision: str | None = "0002_audit_chain_link"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("failed_login_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("users", sa.Column("last_failed_login_at", UTCDateTime()))
    op.add_column("users", sa.Column("locked_until", UTCDateTime()))
    op.add_column("api_keys", sa.Column("pepper_fingerprint", sa.String(16)))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; none of these is indexed.
    op.drop_column("api_keys", "pepper_fingerprint")
    op.drop_column("users", "locked_until")
    op.drop_column("users", "last_failed_login_at")
    op.drop_column("users", "failed_login_count")
