"""Migrations on both dialects (docs/architecture.md §2).

One set of scripts (the top-level ``alembic/`` folder) must serve both
``vutf_cli.db.migrations`` (code-built Alembic Config) and the plain
``alembic`` CLI run from the repository root.  Each test gets its own empty
database from the ``empty_database_url`` fixture, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import configparser
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vutf_cli.db import migrations, schema_version
from vutf_cli.db.engine import make_engine
from vutf_cli.errors import IntegrityFailure, NotFound, SchemaOutdated, VutfError
from vutf_cli.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
APP_TABLES = {"users", "api_keys", "audit_log", "roles", "user_roles"}
PG_TRIGGER_FUNCTION = "audit_log_refuse_change"
PG_CHAIN_FUNCTION = "audit_log_refuse_unlinked"
SQLITE_TRIGGERS = {
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_log_no_replace",
    "audit_log_chain_link",
}
PG_TRIGGERS = {"audit_log_append_only", "audit_log_no_truncate", "audit_log_chain_link"}
# Offline rendering never connects, so these hosts need not exist.
OFFLINE_PG_URL = "postgresql://vutf:s3cret-offline@db.invalid:5432/vutf"
OFFLINE_SQLITE_URL = "sqlite:////nonexistent-dir/vutf-offline.db"


@pytest.fixture
def settings_empty(empty_database_url: str) -> Settings:
    return Settings(database_url=empty_database_url, db_deadline=5.0)


@pytest.fixture
def engine(settings_empty: Settings) -> Iterator[Engine]:
    engine = make_engine(settings_empty)
    try:
        yield engine
    finally:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _pg_function_exists(engine: Engine, name: str = PG_TRIGGER_FUNCTION) -> bool:
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM pg_proc WHERE proname = :name"), {"name": name}
        ).scalar_one()
    return bool(count)


def _trigger_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return set(rows.scalars())


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


# -- the full cycle -----------------------------------------------------------
def test_upgrade_check_downgrade_upgrade_cycle(settings_empty: Settings, engine: Engine) -> None:
    assert _tables(engine) == set()

    migrations.upgrade(settings_empty, engine)
    assert _tables(engine) == APP_TABLES | {"alembic_version"}
    assert _versions(engine) == [migrations.head_revision()]
    expected_triggers = SQLITE_TRIGGERS if engine.dialect.name == "sqlite" else PG_TRIGGERS
    assert _trigger_names(engine) == expected_triggers
    migrations.check_drift(settings_empty, engine)  # no autogenerate differences

    migrations.downgrade(settings_empty, engine, "base")
    assert _tables(engine) == {"alembic_version"}
    assert _versions(engine) == []
    assert _trigger_names(engine) == set()
    if engine.dialect.name == "postgresql":
        assert not _pg_function_exists(engine)
        assert not _pg_function_exists(engine, PG_CHAIN_FUNCTION)
    else:
        with engine.connect() as conn:
            leftovers = conn.execute(
                sa.text(
                    "SELECT type, name FROM sqlite_master "
                    "WHERE tbl_name != 'alembic_version' AND name NOT LIKE 'sqlite_%'"
                )
            ).all()
        assert leftovers == []

    migrations.upgrade(settings_empty, engine)
    assert _tables(engine) == APP_TABLES | {"alembic_version"}
    assert _versions(engine) == [schema_version.HEAD_REVISION]
    migrations.check_drift(settings_empty, engine)


def test_upgrade_at_head_is_a_no_op(settings_empty: Settings, engine: Engine) -> None:
    migrations.upgrade(settings_empty, engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE marker_kept (id integer)")
        )  # would vanish if the schema were rebuilt
    migrations.upgrade(settings_empty, engine)
    assert "marker_kept" in _tables(engine)
    assert _versions(engine) == [schema_version.HEAD_REVISION]


def test_failed_upgrade_leaves_nothing_behind(settings_empty: Settings, engine: Engine) -> None:
    """The migration runs in one transaction: a failure half-way rolls back all of it."""
    with engine.begin() as conn:
        # users and api_keys get created first, then audit_log collides.
        conn.execute(sa.text("CREATE TABLE audit_log (id integer)"))

    with pytest.raises((SQLAlchemyError, VutfError)):
        migrations.upgrade(settings_empty, engine)

    assert _tables(engine) == {"audit_log"}
    if engine.dialect.name == "postgresql":
        assert not _pg_function_exists(engine)


def test_head_constant_matches_the_scripts() -> None:
    assert migrations.head_revision() == schema_version.HEAD_REVISION


def test_source_checkout_uses_the_top_level_scripts() -> None:
    """In a checkout there is one copy of the scripts: the repository's alembic/ folder."""
    import vutf_cli

    if not Path(vutf_cli.__file__).resolve().is_relative_to(REPO_ROOT):
        pytest.skip("vutf_cli is not imported from this checkout")
    assert migrations.script_location().resolve() == (REPO_ROOT / "alembic").resolve()


def test_alembic_ini_holds_no_database_url() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO_ROOT / "alembic.ini")
    assert parser.get("alembic", "script_location").endswith("alembic")
    assert not parser.has_option("alembic", "sqlalchemy.url")


# -- drift detection and error translation -------------------------------------------
def test_drift_is_detected(settings_empty: Settings, engine: Engine) -> None:
    migrations.upgrade(settings_empty, engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN extra integer"))

    with pytest.raises(IntegrityFailure, match="extra") as caught:
        migrations.check_drift(settings_empty, engine)
    assert caught.value.exit_code == 6


def test_check_drift_behind_head_says_upgrade(settings_empty: Settings, engine: Engine) -> None:
    """Alembic refuses to compare a database that is not at head: that is exit 8, not 2."""
    with pytest.raises(SchemaOutdated) as caught:
        migrations.check_drift(settings_empty, engine)
    assert caught.value.exit_code == 8
    assert caught.value.hint is not None
    assert "upgrade" in caught.value.hint


@pytest.mark.parametrize(
    "operation", [migrations.upgrade, migrations.downgrade], ids=["upgrade", "downgrade"]
)
def test_unknown_revision_is_not_found(
    settings_empty: Settings, engine: Engine, operation: Callable[[Settings, Engine, str], None]
) -> None:
    migrations.upgrade(settings_empty, engine)
    with pytest.raises(NotFound) as caught:
        operation(settings_empty, engine, "no_such_revision")
    assert not isinstance(caught.value, CommandError)
    assert caught.value.exit_code == 3
    assert "no_such_revision" in str(caught.value)
    assert _versions(engine) == [schema_version.HEAD_REVISION]  # nothing moved


def test_unknown_revision_offline_is_not_found() -> None:
    with pytest.raises(NotFound):
        migrations.render_sql(Settings(database_url=OFFLINE_SQLITE_URL), "no_such_revision")


# -- offline SQL ------------------------------------------------------------------------
def test_offline_sql_for_postgresql() -> None:
    sql = migrations.render_sql(Settings(database_url=OFFLINE_PG_URL), "head")

    for table in APP_TABLES | {"alembic_version"}:
        assert f"CREATE TABLE {table} (" in sql
    assert "id UUID NOT NULL" in sql
    assert "permissions JSONB NOT NULL" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert f"CREATE FUNCTION {PG_TRIGGER_FUNCTION}() RETURNS trigger" in sql
    assert "CREATE TRIGGER audit_log_append_only" in sql
    assert "CREATE TRIGGER audit_log_no_truncate" in sql
    assert f"CREATE FUNCTION {PG_CHAIN_FUNCTION}() RETURNS trigger" in sql
    assert "CREATE TRIGGER audit_log_chain_link" in sql
    assert sql.count("ENABLE ALWAYS TRIGGER") == 3
    assert "CREATE UNIQUE INDEX uq_users_username_live ON users (lower(username))" in sql
    assert f"'{schema_version.HEAD_REVISION}'" in sql
    assert sql.lstrip().startswith("BEGIN;")
    assert sql.rstrip().endswith("COMMIT;")
    assert "s3cret-offline" not in sql


def test_offline_sql_for_sqlite() -> None:
    sql = migrations.render_sql(Settings(database_url=OFFLINE_SQLITE_URL), "head")

    for table in APP_TABLES:
        assert f"CREATE TABLE {table} (" in sql
    for trigger in SQLITE_TRIGGERS:
        assert f"CREATE TRIGGER {trigger} " in sql
    assert "CREATE FUNCTION" not in sql
    assert "ENABLE ALWAYS" not in sql
    assert not Path("/nonexistent-dir").exists()  # rendering never touched the file


def test_offline_downgrade_sql_drops_everything() -> None:
    sql = migrations.render_sql(Settings(database_url=OFFLINE_PG_URL), "head:base", downgrade=True)
    for table in APP_TABLES:
        assert f"DROP TABLE {table};" in sql
    assert f"DROP FUNCTION IF EXISTS {PG_TRIGGER_FUNCTION}()" in sql
    assert f"DROP FUNCTION IF EXISTS {PG_CHAIN_FUNCTION}()" in sql


def test_offline_sql_runs_and_leaves_no_drift(
    settings_empty: Settings, engine: Engine, backend: str
) -> None:
    """The rendered script is valid for its dialect: executed as-is, it yields the head schema."""
    sql = migrations.render_sql(settings_empty, "head")
    if backend == "sqlite":
        path = make_engine(settings_empty).url.database
        assert path is not None
        raw = sqlite3.connect(path)
        try:
            raw.executescript(sql)
        finally:
            raw.close()
    else:
        raw_pg = engine.raw_connection()
        try:
            driver = raw_pg.driver_connection
            assert driver is not None
            driver.autocommit = True  # the script has its own BEGIN/COMMIT
            with driver.cursor() as cursor:
                cursor.execute(sql)
        finally:
            raw_pg.close()

    assert _versions(engine) == [schema_version.HEAD_REVISION]
    migrations.check_drift(settings_empty, engine)


# -- the alembic CLI from the repository root --------------------------------------------
def test_alembic_import_from_repo_root_is_the_library() -> None:
    """The top-level alembic/ folder (no __init__.py) must not shadow the installed package."""
    result = subprocess.run(
        [sys.executable, "-c", "import alembic; print(alembic.__file__)"],
        cwd=REPO_ROOT,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    location = Path(result.stdout.strip())
    assert "site-packages" in location.parts
    assert not location.resolve().is_relative_to(REPO_ROOT)


def test_alembic_cli_from_repo_root_migrates(empty_database_url: str, engine: Engine) -> None:
    alembic_cli = VENV_BIN / "alembic"
    if not alembic_cli.exists():
        pytest.skip(f"no alembic console script next to {sys.executable}")
    env = _subprocess_env(VUTF_DATABASE_URL=empty_database_url)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(alembic_cli), *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    upgraded = run("upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    assert _tables(engine) == APP_TABLES | {"alembic_version"}
    assert _versions(engine) == [schema_version.HEAD_REVISION]

    checked = run("check")
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout

    # The code path agrees with what the CLI built: same scripts, no drift.
    settings = Settings(database_url=empty_database_url)
    migrations.check_drift(settings, engine)
