"""The audit log refuses a row that does not extend the chain.

Revision ID: 0002_audit_chain_link
Revises: 0001_initial
Create Date: 2026-12-07

With INSERT alone a writer could append a row with any ``seq`` (a gap, or
``2^63-1``, after which no append can ever succeed) and any ``prev_hash``.
A BEFORE INSERT row trigger accepts only the row whose ``seq`` is the current
highest ``seq`` (or 0) plus one and whose ``prev_hash`` is that row's
``row_hash`` (or the genesis hash).  A row trigger sees the rows an earlier
part of the same statement inserted (PostgreSQL: for a VOLATILE function;
SQLite: always), so a multi-row INSERT must arrive in ``seq`` order, which
is how vutf writes it.  The head is read through the unique ``seq`` index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_audit_chain_link"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same SQLSTATE as the append-only triggers: a refusal, never retried.
CHAIN_SQLSTATE = "VU001"
GENESIS = "0" * 64

# The search_path is pinned (pg_temp last) so that a temporary table named
# audit_log cannot stand in for the real one when the trigger reads the head.
PG_TRIGGER = f"""
CREATE FUNCTION audit_log_refuse_unlinked() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_seq bigint := 0;
    head_hash text := '{GENESIS}';
BEGIN
    SELECT seq, row_hash INTO head_seq, head_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := '{GENESIS}';
    END IF;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'audit_log row does not extend the chain: seq % after seq %',
            NEW.seq, head_seq
            USING ERRCODE = '{CHAIN_SQLSTATE}';
    END IF;
    RETURN NEW;
END
$$;
DO $$ BEGIN
    EXECUTE format(
        'ALTER FUNCTION audit_log_refuse_unlinked() SET search_path = %I, pg_temp',
        current_schema()
    );
END $$;
CREATE TRIGGER audit_log_chain_link
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_unlinked();
-- ENABLE ALWAYS: the trigger fires even under session_replication_role = replica.
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_chain_link
"""

# SQLite fires the newest trigger first: a row whose id or seq exists is left
# to audit_log_no_replace, so a replacing INSERT keeps its own refusal.
SQLITE_TRIGGER = f"""CREATE TRIGGER audit_log_chain_link BEFORE INSERT ON audit_log
WHEN (NEW.seq IS NOT coalesce((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), 0) + 1
    OR NEW.prev_hash IS NOT coalesce(
        (SELECT row_hash FROM audit_log ORDER BY seq DESC LIMIT 1), '{GENESIS}'
    ))
    AND NOT EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id OR seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit_log row does not extend the chain'); END"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_chain_link" + _on_table())
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_unlinked()")


def _on_table() -> str:
    return " ON audit_log" if op.get_context().dialect.name == "postgresql" else ""
