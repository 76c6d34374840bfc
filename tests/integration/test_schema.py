"""The live schema against docs/architecture.md §2, on SQLite and PostgreSQL.

Each test gets a fresh database migrated to head (the ``database_url``
fixture) and talks to it through an engine from ``make_engine``, the same
way vutf does.  Rows are written with Core inserts on the ORM tables (so the
column types' bind processing runs) and read back both through those types
and with raw SQL (to see what is really stored).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from vutf_cli.db import (
    migrations,
    models,  # noqa: F401  (registers the tables on the metadata)
)
from vutf_cli.db.base import Base
from vutf_cli.db.engine import make_engine
from vutf_cli.db.types import GUID, UTCDateTime
from vutf_cli.settings import Settings

TABLES = Base.metadata.tables
USERS, API_KEYS, AUDIT_LOG = TABLES["users"], TABLES["api_keys"], TABLES["audit_log"]

AUDIT_COLUMNS = ["created_at", "created_by", "updated_at", "updated_by", "version"]
SOFT_DELETE_COLUMNS = ["is_deleted", "deleted_at", "deleted_by"]

# docs/architecture.md §2, column by column.
EXPECTED_COLUMNS: dict[str, list[str]] = {
    "users": [
        "id",
        "username",
        "email",
        "password_hash",
        "full_name",
        "is_active",
        "is_superuser",
        "is_verified",
        "verified_at",
        "last_login_at",
        "last_login_ip",
        "failed_login_count",
        "last_failed_login_at",
        "locked_until",
        *AUDIT_COLUMNS,
        *SOFT_DELETE_COLUMNS,
    ],
    "api_keys": [
        "id",
        "user_id",
        "name",
        "description",
        "key_prefix",
        "key_hash",
        "permissions",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_ip",
        "usage_count",
        "pepper_fingerprint",
        *AUDIT_COLUMNS,
        *SOFT_DELETE_COLUMNS,
    ],
    "audit_log": [
        "id",
        "seq",
        "created_at",
        "actor",
        "user_id",
        "action",
        "resource_type",
        "resource_id",
        "status",
        "changes",
        "metadata",
        "error_message",
        "duration_ms",
        "ip_address",
        "user_agent",
        "prev_hash",
        "row_hash",
    ],
    # Revision 0004_roles.
    "roles": [
        "id",
        "name",
        "description",
        "permissions",
        "is_builtin",
        *AUDIT_COLUMNS,
        *SOFT_DELETE_COLUMNS,
    ],
    "user_roles": [
        "id",
        "user_id",
        "role_id",
        "granted_by",
        "granted_at",
        "expires_at",
        *AUDIT_COLUMNS,
        *SOFT_DELETE_COLUMNS,
    ],
}

NOT_NULL = {
    "users": {
        "id",
        "username",
        "email",
        "password_hash",
        "is_active",
        "is_superuser",
        "is_verified",
        "failed_login_count",
        "created_at",
        "updated_at",
        "version",
        "is_deleted",
    },
    "api_keys": {
        "id",
        "user_id",
        "name",
        "key_prefix",
        "key_hash",
        "permissions",
        "usage_count",
        "created_at",
        "updated_at",
        "version",
        "is_deleted",
    },
    "audit_log": {
        "id",
        "seq",
        "created_at",
        "actor",
        "action",
        "resource_type",
        "status",
        "prev_hash",
        "row_hash",
    },
    "roles": {
        "id",
        "name",
        "permissions",
        "is_builtin",
        "created_at",
        "updated_at",
        "version",
        "is_deleted",
    },
    "user_roles": {
        "id",
        "user_id",
        "role_id",
        "granted_at",
        "created_at",
        "updated_at",
        "version",
        "is_deleted",
    },
}

STRING_LENGTHS = {
    ("users", "username"): 100,
    ("users", "email"): 254,
    ("api_keys", "key_prefix"): 12,
    ("api_keys", "key_hash"): 64,
    ("audit_log", "prev_hash"): 64,
    ("audit_log", "row_hash"): 64,
}

GUID_COLUMNS = [
    ("users", "id"),
    ("api_keys", "id"),
    ("api_keys", "user_id"),
    ("audit_log", "id"),
    ("audit_log", "user_id"),
    ("roles", "id"),
    ("user_roles", "id"),
    ("user_roles", "user_id"),
    ("user_roles", "role_id"),
]
JSON_COLUMNS = [
    ("api_keys", "permissions"),
    ("audit_log", "changes"),
    ("audit_log", "metadata"),
    ("roles", "permissions"),
]
TIMESTAMP_COLUMNS = [
    (table, column)
    for table, columns in EXPECTED_COLUMNS.items()
    for column in columns
    if column.endswith("_at")
]

IST = timezone(timedelta(hours=5, minutes=30))
SECRET_SENTINEL = "argon2-SECRET-sentinel-7f3c9d"


# -- helpers ------------------------------------------------------------------------
@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(Settings(database_url=database_url, db_deadline=5.0))
    try:
        yield engine
    finally:
        engine.dispose()


def user_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "username": "alice",
        "email": "alice@example.com",
        "password_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    }
    row.update(overrides)
    return row


def key_row(user_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "name": "ci",
        "key_prefix": "vutf_abcdefg",
        "key_hash": uuid.uuid4().hex + uuid.uuid4().hex,
        "permissions": {"read": True},
    }
    row.update(overrides)
    return row


def audit_row(seq: int = 1, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "seq": seq,
        "actor": "tester@test",
        "action": "user.create",
        "resource_type": "user",
        "status": "success",
        # Linked as the chain trigger demands: row n's row_hash is n in hex.
        "prev_hash": f"{seq - 1:064x}",
        "row_hash": f"{seq:064x}",
    }
    row.update(overrides)
    return row


def insert(engine: Engine, table: sa.Table, *rows: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(sa.insert(table), row)


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def run_in_one_transaction(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def pg_data_type(engine: Engine, table: str, column: str) -> str:
    return str(
        scalar(
            engine,
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t AND column_name = :c",
            t=table,
            c=column,
        )
    )


# -- tables and columns ---------------------------------------------------------------
def test_tables_are_exactly_the_designed_ones(engine: Engine) -> None:
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == {*EXPECTED_COLUMNS, "alembic_version"}


def test_columns_match_the_design(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table, expected in EXPECTED_COLUMNS.items():
        columns = inspector.get_columns(table)
        names = [column["name"] for column in columns]
        assert sorted(names) == sorted(expected), table
        assert len(names) == len(set(names)), table

        not_null = {column["name"] for column in columns if not column["nullable"]}
        assert not_null == NOT_NULL[table], table

        for column in columns:
            expected_length = STRING_LENGTHS.get((table, column["name"]))
            if expected_length is not None:
                length = getattr(column["type"], "length", None)
                assert length == expected_length, (table, column["name"])

        assert inspector.get_pk_constraint(table)["constrained_columns"] == ["id"], table


def test_api_keys_foreign_key_cascades(engine: Engine) -> None:
    (foreign_key,) = sa.inspect(engine).get_foreign_keys("api_keys")
    assert foreign_key["constrained_columns"] == ["user_id"]
    assert foreign_key["referred_table"] == "users"
    assert foreign_key["referred_columns"] == ["id"]
    assert foreign_key["options"].get("ondelete", "").upper() == "CASCADE"


def test_server_defaults_fill_flags_and_counters(engine: Engine) -> None:
    """Rows written by other clients (raw SQL, the API) get the documented defaults."""
    user_id, key_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    insert_user = sa.text(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
        "VALUES (:id, 'carol', 'carol@example.com', 'x', :now, :now)"
    ).bindparams(sa.bindparam("id", type_=GUID()), sa.bindparam("now", type_=UTCDateTime()))
    insert_key = sa.text(
        "INSERT INTO api_keys (id, user_id, name, key_prefix, key_hash, permissions, "
        "created_at, updated_at) VALUES (:id, :user_id, 'k', 'vutf_1234567', :hash, '{}', "
        ":now, :now)"
    ).bindparams(
        sa.bindparam("id", type_=GUID()),
        sa.bindparam("user_id", type_=GUID()),
        sa.bindparam("now", type_=UTCDateTime()),
    )
    with engine.begin() as conn:
        conn.execute(insert_user, {"id": user_id, "now": now})
        conn.execute(insert_key, {"id": key_id, "user_id": user_id, "hash": "a" * 64, "now": now})
        user = conn.execute(sa.select(USERS).where(USERS.c.id == user_id)).mappings().one()
        key = conn.execute(sa.select(API_KEYS).where(API_KEYS.c.id == key_id)).mappings().one()

    assert (user["is_active"], user["is_superuser"], user["is_verified"]) == (True, False, False)
    assert (user["is_deleted"], user["version"]) == (False, 1)
    assert (key["usage_count"], key["is_deleted"], key["version"]) == (0, False, 1)
    assert key["permissions"] == {}


# -- UTCDateTime --------------------------------------------------------------------
def test_timestamp_columns_are_timezone_aware(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        for table, column in TIMESTAMP_COLUMNS:
            assert pg_data_type(engine, table, column) == "timestamp with time zone"
    else:
        inspector = sa.inspect(engine)
        for table, column in TIMESTAMP_COLUMNS:
            types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
            assert isinstance(types[column], sa.DateTime), (table, column)


def test_timestamps_round_trip_as_utc_to_the_microsecond(engine: Engine) -> None:
    local = datetime(2026, 11, 26, 6, 10, 4, 123456, tzinfo=IST)
    whole_second = datetime(2026, 11, 26, 0, 40, 5, tzinfo=UTC)
    first, second = (
        user_row(created_at=local),
        user_row(username="bob", email="bob@example.com", created_at=whole_second),
    )
    insert(engine, USERS, first, second)

    with engine.connect() as conn:
        got = conn.execute(
            sa.select(USERS.c.created_at).where(USERS.c.id == first["id"])
        ).scalar_one()
        ordered = conn.execute(sa.select(USERS.c.username).order_by(USERS.c.created_at)).scalars()
        earlier = conn.execute(
            sa.select(USERS.c.username).where(
                # 06:10:04.5 in India is 00:40:04.5 UTC: between the two rows.
                USERS.c.created_at < datetime(2026, 11, 26, 6, 10, 4, 500000, tzinfo=IST)
            )
        ).scalars()
        assert list(ordered) == ["alice", "bob"]
        assert list(earlier) == ["alice"]

    assert got == local
    assert got.utcoffset() == timedelta(0)
    assert got.tzinfo == UTC
    assert (got.hour, got.minute, got.microsecond) == (0, 40, 123456)

    if engine.dialect.name == "sqlite":
        # Stored as fixed-width UTC text, so text order is time order.
        raw = scalar(engine, "SELECT created_at FROM users WHERE username = 'alice'")
        raw_whole = scalar(engine, "SELECT created_at FROM users WHERE username = 'bob'")
        assert raw == "2026-11-26 00:40:04.123456"
        assert raw_whole == "2026-11-26 00:40:05.000000"
    else:
        raw = scalar(
            engine,
            "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
            "FROM users WHERE username = 'alice'",
        )
        assert raw == "2026-11-26 00:40:04.123456"


def test_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        insert(engine, USERS, user_row(created_at=datetime(2026, 11, 26, 6, 10, 4)))
    assert scalar(engine, "SELECT count(*) FROM users") == 0


def test_naive_datetime_is_refused_in_a_filter(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), engine.connect() as conn:
        conn.execute(sa.select(USERS.c.id).where(USERS.c.created_at < datetime(2026, 1, 1)))


# -- GUID -----------------------------------------------------------------------
def test_guid_storage(engine: Engine) -> None:
    user = user_row()
    insert(engine, USERS, user)
    with engine.connect() as conn:
        got = conn.execute(sa.select(USERS.c.id)).scalar_one()
    assert isinstance(got, uuid.UUID)
    assert got == user["id"]

    if engine.dialect.name == "postgresql":
        for table, column in GUID_COLUMNS:
            assert pg_data_type(engine, table, column) == "uuid", (table, column)
    else:
        with engine.connect() as conn:
            kind, length, text = conn.execute(
                sa.text("SELECT typeof(id), length(id), id FROM users")
            ).one()
        assert (kind, length) == ("text", 36)
        assert text == str(user["id"])


def test_guid_accepts_its_text_form(engine: Engine) -> None:
    user_id = uuid.uuid4()
    insert(engine, USERS, user_row(id=str(user_id)))
    with engine.connect() as conn:
        found = conn.execute(sa.select(USERS.c.username).where(USERS.c.id == str(user_id)))
        assert found.scalar_one() == "alice"


# -- JSONType -------------------------------------------------------------------
def test_json_column_types(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        for table, column in JSON_COLUMNS:
            assert pg_data_type(engine, table, column) == "jsonb", (table, column)
    else:
        inspector = sa.inspect(engine)
        for table, column in JSON_COLUMNS:
            types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
            assert isinstance(types[column], sa.Text), (table, column)


def test_json_round_trips_and_is_never_double_encoded(engine: Engine) -> None:
    changes = {"a": 1}
    metadata = {
        "host": "büro-rechner",
        "command": "vutf users update Zoë --full-name '日本語 ✓'",
        "nested": {"list": [1, 2.5, True, None, "x"], "empty": {}},
    }
    permissions = {"users:read": True, "api_keys:*": True}
    user = user_row()
    insert(engine, USERS, user)
    insert(engine, API_KEYS, key_row(user["id"], permissions=permissions))
    insert(engine, AUDIT_LOG, audit_row(1, changes=changes, metadata=metadata))

    with engine.connect() as conn:
        row = conn.execute(sa.select(AUDIT_LOG.c.changes, AUDIT_LOG.c.metadata)).one()
        got_permissions = conn.execute(sa.select(API_KEYS.c.permissions)).scalar_one()
    assert row._mapping["changes"] == changes
    assert row._mapping["metadata"] == metadata
    assert got_permissions == permissions

    if engine.dialect.name == "postgresql":
        kinds = scalar(
            engine,
            "SELECT jsonb_typeof(changes) || ',' || jsonb_typeof(metadata) FROM audit_log",
        )
        assert kinds == "object,object"
        raw_changes = scalar(engine, "SELECT changes::text FROM audit_log")
        raw_metadata = scalar(engine, "SELECT metadata::text FROM audit_log")
    else:
        kinds = scalar(engine, "SELECT typeof(changes) || ',' || typeof(metadata) FROM audit_log")
        assert kinds == "text,text"
        raw_changes = scalar(engine, "SELECT changes FROM audit_log")
        raw_metadata = scalar(engine, "SELECT metadata FROM audit_log")
        assert raw_changes == '{"a":1}'
    # One json.loads gives the object back: the stored text is not a JSON string.
    assert json.loads(raw_changes) == changes
    assert json.loads(raw_metadata) == metadata


def test_json_none_is_sql_null(engine: Engine) -> None:
    insert(engine, AUDIT_LOG, audit_row(1, changes=None, metadata=None))
    assert scalar(engine, "SELECT count(*) FROM audit_log WHERE changes IS NULL") == 1
    assert scalar(engine, "SELECT count(*) FROM audit_log WHERE metadata IS NULL") == 1


# -- uniqueness among live rows ------------------------------------------------------
def test_usernames_are_unique_case_insensitively(engine: Engine) -> None:
    insert(engine, USERS, user_row(username="Alice"))
    with pytest.raises(IntegrityError) as caught:
        insert(engine, USERS, user_row(username="aLICE", email="other@example.com"))
    assert "uq_users_username_live" in str(caught.value.orig)


def test_emails_are_unique(engine: Engine) -> None:
    insert(engine, USERS, user_row())
    with pytest.raises(IntegrityError) as caught:
        insert(engine, USERS, user_row(username="alice2"))
    assert "uq_users_email_live" in str(caught.value.orig)


def test_emails_must_be_stored_lower_case(engine: Engine) -> None:
    with pytest.raises(IntegrityError) as caught:
        insert(engine, USERS, user_row(email="Alice@Example.com"))
    assert "ck_users_email_lower_case" in str(caught.value.orig)


def test_soft_deleted_user_does_not_block_a_new_one(engine: Engine) -> None:
    deleted = user_row(username="Alice")
    insert(engine, USERS, deleted)
    with engine.begin() as conn:
        conn.execute(sa.update(USERS).where(USERS.c.id == deleted["id"]).values(is_deleted=True))

    insert(engine, USERS, user_row(username="ALICE"))  # same name and email, now free
    assert scalar(engine, "SELECT count(*) FROM users") == 2
    # ...but only one live row may hold them.
    with pytest.raises(IntegrityError):
        insert(engine, USERS, user_row(username="alice", email="third@example.com"))


def test_api_key_names_are_unique_per_user_among_live_keys(engine: Engine) -> None:
    alice, bob = user_row(), user_row(username="bob", email="bob@example.com")
    insert(engine, USERS, alice, bob)
    first = key_row(alice["id"], name="ci")
    insert(engine, API_KEYS, first, key_row(bob["id"], name="ci"))

    with pytest.raises(IntegrityError) as caught:
        insert(engine, API_KEYS, key_row(alice["id"], name="ci"))
    # SQLite names the columns of a plain-column index rather than the index.
    message = str(caught.value.orig)
    assert (
        "uq_api_keys_user_id_name_live" in message or "api_keys.user_id, api_keys.name" in message
    )

    with engine.begin() as conn:
        conn.execute(
            sa.update(API_KEYS).where(API_KEYS.c.id == first["id"]).values(is_deleted=True)
        )
    insert(engine, API_KEYS, key_row(alice["id"], name="ci"))


def test_key_hash_is_unique_across_users(engine: Engine) -> None:
    alice, bob = user_row(), user_row(username="bob", email="bob@example.com")
    insert(engine, USERS, alice, bob)
    insert(engine, API_KEYS, key_row(alice["id"], key_hash="f" * 64))
    with pytest.raises(IntegrityError) as caught:
        insert(engine, API_KEYS, key_row(bob["id"], key_hash="f" * 64))
    assert "key_hash" in str(caught.value.orig)


def test_live_name_indexes_are_partial_expression_indexes(engine: Engine) -> None:
    for column in ("username", "email"):
        name = f"uq_users_{column}_live"
        if engine.dialect.name == "sqlite":
            sql = scalar(
                engine,
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name",
                name=name,
            )
            normalized = " ".join(sql.split())
            assert normalized.startswith(f"CREATE UNIQUE INDEX {name} ON users")
            assert f"lower({column})" in normalized
            assert normalized.endswith("WHERE NOT is_deleted")
        else:
            definition = scalar(
                engine, "SELECT indexdef FROM pg_indexes WHERE indexname = :name", name=name
            )
            assert definition.startswith(f"CREATE UNIQUE INDEX {name} ON ")
            assert f"lower(({column})::text)" in definition
            assert definition.endswith("WHERE (NOT is_deleted)")


# -- CHECK constraints and the foreign key ------------------------------------------------
def test_status_check_refuses_unknown_values(engine: Engine) -> None:
    with pytest.raises(IntegrityError) as caught:
        insert(engine, AUDIT_LOG, audit_row(1, status="bogus"))
    assert "ck_audit_log_status_valid" in str(caught.value.orig)

    insert(
        engine,
        AUDIT_LOG,
        audit_row(1, status="success"),
        audit_row(2, status="failure"),
        audit_row(3, status="error"),
    )
    assert scalar(engine, "SELECT count(*) FROM audit_log") == 3


@pytest.mark.parametrize(
    ("table", "row", "constraint"),
    [
        ("users", {"username": "ab"}, "ck_users_username_length"),
        ("api_keys", {"usage_count": -1}, "ck_api_keys_usage_count_non_negative"),
    ],
)
def test_other_checks(engine: Engine, table: str, row: dict[str, Any], constraint: str) -> None:
    if table == "users":
        target, values = USERS, user_row(**row)
    elif table == "api_keys":
        owner = user_row()
        insert(engine, USERS, owner)
        target, values = API_KEYS, key_row(owner["id"], **row)
    else:
        target, values = AUDIT_LOG, audit_row(**row)
    with pytest.raises(IntegrityError) as caught:
        insert(engine, target, values)
    assert constraint in str(caught.value.orig)


def insert_without_chain_trigger(engine: Engine, row: dict[str, Any]) -> None:
    """INSERT with the chain-link trigger off for this transaction only (restored after)."""
    if engine.dialect.name == "postgresql":
        off = "ALTER TABLE audit_log DISABLE TRIGGER audit_log_chain_link"
    else:
        off = "DROP TRIGGER audit_log_chain_link"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(off))
            conn.execute(sa.insert(AUDIT_LOG), row)
    finally:
        query = (
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_log_chain_link' "
            "AND tgenabled = 'A'"
            if engine.dialect.name == "postgresql"
            else "SELECT count(*) FROM sqlite_master WHERE name = 'audit_log_chain_link'"
        )
        assert scalar(engine, query) == 1  # the rollback restored the trigger


@pytest.mark.parametrize(
    ("first", "row", "constraint"),
    [
        (False, audit_row(0), "ck_audit_log_seq_positive"),
        # PostgreSQL: the unique seq index; SQLite: the no-replace trigger, before it.
        (True, audit_row(1), "uq_audit_log_seq|append-only: replacing INSERT"),
    ],
)
def test_audit_seq_checks_hold_behind_the_chain_trigger(
    engine: Engine, first: bool, row: dict[str, Any], constraint: str
) -> None:
    """The chain trigger refuses these first; the constraints still hold without it."""
    if first:
        insert(engine, AUDIT_LOG, audit_row(1))
    # SQLite: a row whose seq exists is the no-replace trigger's to refuse.
    with pytest.raises(DBAPIError, match=r"does not extend the chain|append-only: replacing"):
        insert(engine, AUDIT_LOG, row)
    with pytest.raises(IntegrityError, match=constraint):
        insert_without_chain_trigger(engine, row)
    assert scalar(engine, "SELECT count(*) FROM audit_log") == int(first)


def test_hard_user_delete_cascades_to_api_keys(engine: Engine) -> None:
    alice, bob = user_row(), user_row(username="bob", email="bob@example.com")
    insert(engine, USERS, alice, bob)
    insert(engine, API_KEYS, key_row(alice["id"], name="one"), key_row(alice["id"], name="two"))
    insert(engine, API_KEYS, key_row(bob["id"], name="one"))

    with engine.begin() as conn:
        conn.execute(sa.delete(USERS).where(USERS.c.id == alice["id"]))
        remaining = conn.execute(sa.select(API_KEYS.c.user_id)).scalars().all()
    assert remaining == [bob["id"]]


def test_api_key_for_unknown_user_is_refused(engine: Engine) -> None:
    """On SQLite this needs PRAGMA foreign_keys=ON, which make_engine sets per connection."""
    with pytest.raises(IntegrityError):
        insert(engine, API_KEYS, key_row(uuid.uuid4()))


# -- the audit log's append-only triggers ----------------------------------------------
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"],
)
def test_audit_log_refuses_update_and_delete(engine: Engine, statement: str) -> None:
    insert(engine, AUDIT_LOG, audit_row(1))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert scalar(engine, "SELECT actor FROM audit_log") == "tester@test"


def test_audit_log_append_only_cannot_be_sidestepped(engine: Engine) -> None:
    """PostgreSQL: TRUNCATE and replica mode; SQLite: INSERT OR REPLACE."""
    first = audit_row(1)
    insert(engine, AUDIT_LOG, first)
    if engine.dialect.name == "postgresql":
        for sidestep in (
            ["TRUNCATE audit_log"],
            ["SET LOCAL session_replication_role = replica", "DELETE FROM audit_log"],
        ):
            with pytest.raises(DBAPIError) as caught:
                run_in_one_transaction(engine, sidestep)
            assert getattr(caught.value.orig, "pgcode", None) == "VU001"
        enabled = scalar(
            engine,
            "SELECT string_agg(tgenabled::text, '' ORDER BY tgname) FROM pg_trigger "
            "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal",
        )
        assert enabled == "AAA"  # ENABLE ALWAYS
    else:
        replace = sa.insert(AUDIT_LOG).prefix_with("OR REPLACE")
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(replace, audit_row(2, id=first["id"], actor="mallory"))
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(replace, audit_row(1, actor="mallory"))
    assert scalar(engine, "SELECT actor FROM audit_log") == "tester@test"


# -- engine settings ----------------------------------------------------------------
def test_engine_hides_bound_parameters(engine: Engine) -> None:
    assert engine.hide_parameters is True
    insert(engine, USERS, user_row())
    with pytest.raises(IntegrityError) as caught:
        insert(engine, USERS, user_row(password_hash=SECRET_SENTINEL, email="x@example.com"))
    message = str(caught.value)
    assert "parameters hidden" in message
    assert SECRET_SENTINEL not in message
    assert SECRET_SENTINEL not in repr(caught.value)


def test_connection_settings(database_url: str) -> None:
    """PostgreSQL: timeouts, UTC and a name; SQLite: WAL, foreign keys and a busy timeout."""
    settings = Settings(database_url=database_url, statement_timeout_ms=12345, db_deadline=4.0)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:

            def first(sql: str) -> Any:
                return conn.exec_driver_sql(sql).scalar_one()

            if engine.dialect.name == "postgresql":
                assert first("SHOW statement_timeout") == "12345ms"
                assert first("SHOW timezone") == "UTC"
                assert first("SHOW application_name") == "vutf"
                assert first("SHOW idle_in_transaction_session_timeout") == "1min"
                # The server clock comes back aware, in UTC.
                assert first("SELECT now()").utcoffset() == timedelta(0)
            else:
                assert first("PRAGMA journal_mode") == "wal"
                assert first("PRAGMA foreign_keys") == 1
                assert first("PRAGMA busy_timeout") == 4000
    finally:
        engine.dispose()


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    """The database, its -wal and -shm are 0600 and the new folder 0700, whatever the umask."""
    path = tmp_path / "fresh" / "vutf.db"
    settings = Settings(database_url=f"sqlite:///{path}")
    previous_umask = os.umask(0)
    try:
        engine = make_engine(settings)
        try:
            migrations.upgrade(settings, engine)
            insert(engine, USERS, user_row())
            with engine.connect() as conn:  # keeps the WAL open while we look
                assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 1
                for name in ("vutf.db", "vutf.db-wal", "vutf.db-shm"):
                    mode = stat.S_IMODE((path.parent / name).stat().st_mode)
                    assert mode == 0o600, f"{name} has mode {mode:04o}"
                assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        finally:
            engine.dispose()
    finally:
        os.umask(previous_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
