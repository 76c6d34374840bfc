"""Tampering with the audit log in tests, the way an attacker with superuser rights would.

The append-only triggers are switched off (PostgreSQL) or dropped (SQLite)
inside one transaction and restored before it commits, so they are never off
for anyone else.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from vutf_cli.db.database import Database

SQLITE_TRIGGER_NAMES = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_log_no_replace",
    "audit_log_chain_link",
)
POSTGRES_TRIGGER_NAMES = ("audit_log_append_only", "audit_log_no_truncate", "audit_log_chain_link")


def load_migration(name: str = "0001_initial") -> Any:
    """A revision as a module (its trigger DDL is the one to restore)."""
    path = Path(__file__).resolve().parents[1] / "alembic" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"vutf_test_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def tampering(db: Database) -> Iterator[Connection]:
    """A transaction in which the append-only triggers are off (restored before COMMIT)."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            for name in SQLITE_TRIGGER_NAMES:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        if db.dialect == "postgresql":
            for name in POSTGRES_TRIGGER_NAMES:
                conn.exec_driver_sql(f"ALTER TABLE audit_log ENABLE ALWAYS TRIGGER {name}")
        else:
            for statement in load_migration().SQLITE_TRIGGERS:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql(load_migration("0002_audit_chain_link").SQLITE_TRIGGER)
