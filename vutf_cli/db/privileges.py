"""The least-privilege runtime role on PostgreSQL: exactly what vutf needs at run time.

vutf's tables belong to the role that ran ``vutf db upgrade`` (the owner).
Day-to-day commands should run as a different role that may read and write
users and keys, append to the audit log, and nothing else:

* ``users``, ``api_keys``: SELECT, INSERT, UPDATE, DELETE;
* ``audit_log``: SELECT, INSERT — never UPDATE, DELETE or TRUNCATE;
* ``roles``, ``user_roles``: SELECT, INSERT, UPDATE (removals are soft deletes);
* ``alembic_version``: SELECT (every command checks the schema is at head);
* the database: CONNECT; the schema: USAGE (never CREATE: no DDL).

Soft deletes, revocations and ``keys prune-expired`` are UPDATEs; DELETE is
there for ``users delete --hard`` (which also removes the user's keys) and
can be left out (``hard_delete=False``), and then a hard delete is refused by
the database.  ``pg_advisory_xact_lock``, which serializes audit appends, is
a function every role may run: nothing to grant.

Grants are preceded by ``REVOKE ALL`` on the six tables, so a role that had
more (say ``ALL`` on ``audit_log``) ends up with exactly this set.  Without
UPDATE or DELETE on ``audit_log``, the privilege check refuses an edit before
any trigger is consulted: disabling the append-only triggers, or
``session_replication_role = replica`` (which only a superuser may set
anyway), changes nothing for this role.  That holds only for a role that is
not a superuser and does not own the tables (an owner may alter the table
and grant itself anything), so such roles are refused.

Names go through SQLAlchemy's PostgreSQL identifier quoting (quoted when
needed, embedded quotes doubled): a role name cannot inject SQL.  Passwords
are not vutf's business: a role created here is ``NOLOGIN``, and the DBA
either runs ``ALTER ROLE name LOGIN PASSWORD '…'`` or grants the role to a
login role.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The tables vutf's migrations create, in the order grants are listed.
VUTF_TABLES = ("users", "api_keys", "audit_log", "roles", "user_roles", "alembic_version")

# Every table privilege PostgreSQL knows (what REVOKE ALL takes away).
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers.
MAX_ROLE_NAME_BYTES = 63

# Role names PostgreSQL reserves (CREATE ROLE refuses them).
_RESERVED_ROLE_NAMES = frozenset({"public", "none"})
_RESERVED_ROLE_PREFIX = "pg_"


def runtime_privileges(*, hard_delete: bool = True) -> dict[str, tuple[str, ...]]:
    """Table → the privileges the runtime role gets on it."""
    writable: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE")
    if hard_delete:
        writable += ("DELETE",)
    return {
        "users": writable,
        "api_keys": writable,
        "audit_log": ("SELECT", "INSERT"),
        # Roles are never hard-deleted; SELECT … FOR UPDATE (the role lock
        # that serializes assignment changes) needs UPDATE.  A hard user
        # delete reaches user_roles through the foreign key's cascade, which
        # runs with the table owner's rights: no DELETE on either.
        "roles": ("SELECT", "INSERT", "UPDATE"),
        "user_roles": ("SELECT", "INSERT", "UPDATE"),
        "alembic_version": ("SELECT",),
    }


def check_role_name(name: str) -> str:
    """``name`` if PostgreSQL would take it as is as a role name, else InvalidInput."""
    if not name:
        raise InvalidInput("the role name is empty")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise InvalidInput("the role name contains a control character")
    if len(name.encode("utf-8")) > MAX_ROLE_NAME_BYTES:
        raise InvalidInput(
            f"the role name is longer than {MAX_ROLE_NAME_BYTES} bytes "
            "(PostgreSQL would truncate it)"
        )
    if name in _RESERVED_ROLE_NAMES or name.startswith(_RESERVED_ROLE_PREFIX):
        raise InvalidInput(
            f"{name!r} is reserved by PostgreSQL (public, none, and names starting with pg_)",
            hint="name a role of your own, e.g. vutf_runtime",
        )
    return name


def quote_identifier(name: str) -> str:
    """``name`` as a PostgreSQL identifier: quoted (embedded quotes doubled) when needed."""
    from sqlalchemy.dialects.postgresql.base import PGDialect

    # A dialect whose bound parameters are not %-style: otherwise the preparer
    # doubles every % for the driver, and the statements here are sent (or
    # printed for psql) without parameters, as they are.
    dialect = PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    return dialect.identifier_preparer.quote(name)


def _table_list(schema: str, tables: Sequence[str]) -> str:
    return ", ".join(f"{quote_identifier(schema)}.{quote_identifier(table)}" for table in tables)


def grant_statements(
    role: str,
    *,
    database: str,
    schema: str = "public",
    hard_delete: bool = True,
    create: bool = False,
) -> list[str]:
    """The statements (without ``;``) that give ``role`` exactly the runtime privileges."""
    who = quote_identifier(check_role_name(role))
    statements = [f"CREATE ROLE {who} NOLOGIN"] if create else []
    statements += [
        f"REVOKE ALL ON TABLE {_table_list(schema, VUTF_TABLES)} FROM {who}",
        f"GRANT CONNECT ON DATABASE {quote_identifier(database)} TO {who}",
        f"GRANT USAGE ON SCHEMA {quote_identifier(schema)} TO {who}",
    ]
    by_privileges: dict[tuple[str, ...], list[str]] = {}
    for table, privileges in runtime_privileges(hard_delete=hard_delete).items():
        by_privileges.setdefault(privileges, []).append(table)
    for privileges, tables in by_privileges.items():
        statements.append(
            f"GRANT {', '.join(privileges)} ON TABLE {_table_list(schema, tables)} TO {who}"
        )
    return statements


def revoke_statements(role: str, *, database: str, schema: str = "public") -> list[str]:
    """The statements (without ``;``) that take back everything :func:`grant_statements` gave."""
    who = quote_identifier(check_role_name(role))
    return [
        f"REVOKE ALL ON TABLE {_table_list(schema, VUTF_TABLES)} FROM {who}",
        f"REVOKE USAGE ON SCHEMA {quote_identifier(schema)} FROM {who}",
        f"REVOKE CONNECT ON DATABASE {quote_identifier(database)} FROM {who}",
    ]


def render_script(statements: Sequence[str], *, comments: Sequence[str] = ()) -> str:
    """A psql-ready script: the statements in one transaction (all or nothing)."""
    lines = [f"-- {comment}" for comment in comments]
    lines.append("BEGIN;")
    lines += [f"{statement};" for statement in statements]
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


# -- reading the live catalog ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoleFacts:
    """What the catalog says about a role, as far as restricting it goes."""

    name: str
    superuser: bool
    can_login: bool
    # vutf tables owned by the role or by a role it is a member of.
    owns: tuple[str, ...]


def vutf_schema(conn: Connection) -> str:
    """The schema holding vutf's tables, as the search path finds ``audit_log``."""
    from sqlalchemy import text

    found = conn.execute(
        text(
            "SELECT n.nspname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass('audit_log')"
        )
    ).scalar()
    return str(found) if found is not None else "public"


def current_database(conn: Connection) -> str:
    from sqlalchemy import text

    return str(conn.execute(text("SELECT current_database()")).scalar_one())


def role_facts(conn: Connection, role: str, *, schema: str) -> RoleFacts | None:
    """The role's facts, or None when no such role exists."""
    from sqlalchemy import text

    row = conn.execute(
        text("SELECT rolsuper, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = :role"),
        {"role": role},
    ).first()
    if row is None:
        return None
    owns = conn.execute(
        text(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = ANY(:tables) "
            "AND pg_catalog.pg_has_role(:role, c.relowner, 'MEMBER') "
            "ORDER BY c.relname"
        ),
        {"schema": schema, "tables": list(VUTF_TABLES), "role": role},
    ).scalars()
    return RoleFacts(
        name=role, superuser=bool(row[0]), can_login=bool(row[1]), owns=tuple(map(str, owns))
    )


def not_administered(conn: Connection, *, schema: str) -> tuple[str, ...]:
    """The vutf tables whose privileges this connection's role may not change.

    Only an owner (or a member of the owning role, or a superuser) may: a
    GRANT or REVOKE by anybody else is at best a warning that changes nothing.
    """
    from sqlalchemy import text

    return tuple(
        str(name)
        for name in conn.execute(
            text(
                "SELECT c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relname = ANY(:tables) "
                "AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') "
                "ORDER BY c.relname"
            ),
            {"schema": schema, "tables": list(VUTF_TABLES)},
        ).scalars()
    )


def may_connect_and_use(conn: Connection, role: str, *, database: str, schema: str) -> bool:
    """Whether ``role`` may connect to ``database`` and look up tables in ``schema``."""
    from sqlalchemy import text

    return bool(
        conn.execute(
            text(
                "SELECT pg_catalog.has_database_privilege(:role, :database, 'CONNECT') "
                "AND pg_catalog.has_schema_privilege(:role, :schema, 'USAGE')"
            ),
            {"role": role, "database": database, "schema": schema},
        ).scalar_one()
    )


def direct_grants(conn: Connection, role: str, *, schema: str) -> dict[str, tuple[str, ...]]:
    """Table → privileges granted to ``role`` itself (not through PUBLIC or a membership)."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT c.relname, a.privilege_type FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
            "JOIN pg_catalog.pg_roles r ON r.oid = a.grantee "
            "WHERE n.nspname = :schema AND c.relname = ANY(:tables) AND r.rolname = :role"
        ),
        {"schema": schema, "tables": list(VUTF_TABLES), "role": role},
    ).all()
    held: dict[str, set[str]] = {}
    for table, privilege in rows:
        held.setdefault(str(table), set()).add(str(privilege))
    return {table: _in_order(privileges) for table, privileges in held.items()}


def effective_privileges(conn: Connection, role: str, *, schema: str) -> dict[str, tuple[str, ...]]:
    """Table → the privileges ``role`` holds on it, however obtained (PUBLIC, membership)."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT c.relname, p.privilege FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN unnest(CAST(:privileges AS text[])) AS p(privilege) "
            "WHERE n.nspname = :schema AND c.relname = ANY(:tables) "
            "AND pg_catalog.has_table_privilege(:role, c.oid, p.privilege)"
        ),
        {
            "privileges": list(TABLE_PRIVILEGES),
            "schema": schema,
            "tables": list(VUTF_TABLES),
            "role": role,
        },
    ).all()
    held: dict[str, set[str]] = {table: set() for table in VUTF_TABLES}
    for table, privilege in rows:
        held[str(table)].add(str(privilege))
    return {table: _in_order(held[table]) for table in VUTF_TABLES}


def excess_privileges(
    held: Mapping[str, Sequence[str]], allowed: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]]:
    """Table → privileges held beyond ``allowed`` (only tables with any)."""
    excess = {
        table: _in_order(set(privileges) - set(allowed.get(table, ())))
        for table, privileges in held.items()
    }
    return {table: privileges for table, privileges in excess.items() if privileges}


def _in_order(privileges: set[str]) -> tuple[str, ...]:
    return tuple(name for name in TABLE_PRIVILEGES if name in privileges)


__all__ = [
    "MAX_ROLE_NAME_BYTES",
    "TABLE_PRIVILEGES",
    "VUTF_TABLES",
    "RoleFacts",
    "check_role_name",
    "current_database",
    "direct_grants",
    "effective_privileges",
    "excess_privileges",
    "grant_statements",
    "may_connect_and_use",
    "not_administered",
    "quote_identifier",
    "render_script",
    "revoke_statements",
    "role_facts",
    "runtime_privileges",
    "vutf_schema",
]
