"""Migrated PostgreSQL databases for tests: cloned from a template, reused once emptied.

``CREATE DATABASE ... TEMPLATE`` per test is the costly part of a database
test; emptying the tables of a clone is not.  :class:`PostgresClones` keeps
the clones of one template for one pytest process (each xdist worker has its
own template, so names never collide).  After a test its clone is given back:

* the other sessions on it are ended (a killed subprocess, pgbouncer's pool:
  they could hold locks the ``TRUNCATE`` would wait for);
* every table but ``alembic_version`` is emptied in one transaction; the audit
  log's triggers that refuse ``TRUNCATE`` (``ENABLE ALWAYS``) are switched off
  for it and restored to their exact state before the commit;
* its shape (:data:`SHAPE_SQL`: schema objects, owners, grants, trigger
  states, functions, database settings, the alembic version) is compared with
  that of a new clone.  Any difference, or any error, drops it instead, so a
  test that changed more than rows never leaks into the next one.

Tests whose subject is that shape still get a clone of their own
(:meth:`PostgresClones.clone`, dropped afterwards).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy.engine import make_url

SHAPE_SQL = r"""
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
)
SELECT line FROM (
    SELECT concat_ws(' ', 'schema', nspname, pg_get_userbyid(n.nspowner), n.nspacl::text)
    FROM pg_namespace n JOIN ns USING (oid, nspname)
  UNION ALL
    SELECT concat_ws(' ', 'relation', ns.nspname, c.relname, c.relkind,
                     pg_get_userbyid(c.relowner), c.relacl::text, c.relrowsecurity)
    FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
    SELECT concat_ws(' ', 'column', a.attrelid::regclass::text, a.attname,
                     format_type(a.atttypid, a.atttypmod), a.attnotnull,
                     pg_get_expr(d.adbin, d.adrelid), a.attacl::text)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN ns ON ns.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT concat_ws(' ', 'constraint', co.conrelid::regclass::text, co.conname,
                     pg_get_constraintdef(co.oid))
    FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace
  UNION ALL
    SELECT concat_ws(' ', 'index', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
    SELECT concat_ws(' ', 'trigger', t.tgenabled, pg_get_triggerdef(t.oid))
    FROM pg_trigger t WHERE NOT t.tgisinternal
  UNION ALL
    SELECT concat_ws(' ', 'function', p.oid::regprocedure::text, md5(p.prosrc),
                     pg_get_userbyid(p.proowner), p.proacl::text, p.prosecdef)
    FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
  UNION ALL
    SELECT concat_ws(' ', 'type', t.oid::regtype::text, t.typtype)
    FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
  UNION ALL
    SELECT concat_ws(' ', 'policy', polrelid::regclass::text, polname) FROM pg_policy
  UNION ALL
    SELECT concat_ws(' ', 'extension', extname, extversion) FROM pg_extension
  UNION ALL
    SELECT concat_ws(' ', 'default acl', defaclrole::regrole::text, defaclobjtype,
                     defaclacl::text)
    FROM pg_default_acl
  UNION ALL
    SELECT concat_ws(' ', 'database', pg_get_userbyid(datdba), datacl::text)
    FROM pg_database WHERE datname = current_database()
  UNION ALL
    SELECT concat_ws(' ', 'setting', s.setrole::regrole::text, s.setconfig::text)
    FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
    WHERE d.datname = current_database()
  UNION ALL
    SELECT concat_ws(' ', 'alembic version', version_num) FROM alembic_version
) AS shape(line)
ORDER BY line
"""

# The tables a reset empties: all but the migration version.
_TABLES_SQL = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
"""
_TRIGGERS_SQL = """
SELECT tgrelid::regclass::text, quote_ident(tgname), tgenabled FROM pg_trigger
WHERE NOT tgisinternal AND tgenabled <> 'D' AND tgrelid::regclass::text = ANY(%s::text[])
"""
_ENABLE = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


def worker_name() -> str:
    """The xdist worker ("gw0", ...) or "main": part of database names, for the reader."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def connect(url: str, database: str | None = None) -> Any:
    """A psycopg2 connection for ``url`` (to ``database`` when given)."""
    import psycopg2

    parts = make_url(url)
    return psycopg2.connect(
        host=parts.host or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname=database or parts.database,
        connect_timeout=5,
    )


class PostgresClones:
    """Clones of ``template`` on the server of ``admin_url``; see the module docstring."""

    def __init__(self, admin_url: str, template: str, prefix: str = "vutf_t_") -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self._free: list[str] = []
        self._shape: list[str] | None = None

    def url(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        conn = connect(self.admin_url)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()

    def clone(self) -> str:
        """A new clone, never handed out before."""
        name = f"{self.prefix}{worker_name()}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def take(self) -> str:
        """An emptied clone given back by an earlier test, or a new one."""
        if self._free:
            return self._free.pop()
        name = self.clone()
        if self._shape is None:  # what every clone given back must look like
            conn = connect(self.admin_url, name)
            try:
                self._shape = _shape_of(conn)
            finally:
                conn.close()
        return name

    def give_back(self, name: str) -> None:
        """Empty the clone for the next test, or drop it if it is not as cloned."""
        try:
            reusable = self._reset(name)
        except Exception:  # whatever went wrong, a new clone is the safe answer
            reusable = False
        if reusable:
            self._free.append(name)
        else:
            self.drop(name)

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        while self._free:
            self.drop(self._free.pop())

    def _reset(self, name: str) -> bool:
        conn = connect(self.admin_url, name)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.autocommit = False
                cursor.execute("SET LOCAL lock_timeout = '10s'")
                cursor.execute(_TABLES_SQL)
                tables = [table for (table,) in cursor.fetchall()]
                cursor.execute(_TRIGGERS_SQL, (tables,))
                triggers = cursor.fetchall()
                for table, trigger, _ in triggers:
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
                # The built-in roles are rows the migration seeded: they stay.
                emptied = [table for table in tables if table != "roles"]
                if emptied:
                    cursor.execute(f"TRUNCATE {', '.join(emptied)} RESTART IDENTITY CASCADE")
                if "roles" in tables:
                    cursor.execute("DELETE FROM roles WHERE NOT is_builtin")
                for table, trigger, state in triggers:
                    cursor.execute(f"ALTER TABLE {table} {_ENABLE[state]} TRIGGER {trigger}")
            conn.commit()
            return _shape_of(conn) == self._shape
        finally:
            conn.close()


def _shape_of(conn: Any) -> list[str]:
    with conn.cursor() as cursor:
        cursor.execute(SHAPE_SQL)
        lines = [line for (line,) in cursor.fetchall()]
    conn.rollback()
    return lines
