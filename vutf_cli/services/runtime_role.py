"""`vutf db grant-runtime` / `revoke-runtime`: the least-privilege runtime role (PostgreSQL).

What the role may do is decided in :mod:`vutf_cli.db.privileges`; here are
the use cases: render the script offline (``--sql``), or run it in one
transaction with its audit row, refusing a role that would hold more than
the runtime set.  SQLite has no roles: InvalidInput (2), before connecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound
from vutf_cli.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from vutf_cli.db.database import Database
    from vutf_cli.db.uow import UnitOfWork

__all__ = [
    "ROLE_RESOURCE",
    "RuntimeRoleResult",
    "RuntimeRoleSql",
    "audit_key_warning",
    "grant_runtime",
    "render_runtime_grant_sql",
    "render_runtime_revoke_sql",
    "require_postgresql",
    "revoke_runtime",
]


def audit_key_warning(settings: Settings, role: str) -> str | None:
    """What ``grant-runtime`` warns when no ``VUTF_AUDIT_KEY`` is configured (None: one is).

    The runtime role may INSERT into ``audit_log``.  The database refuses a
    row that does not extend the chain, but a correctly linked row is
    accepted; without a key its hash is plain SHA-256, which anyone can
    compute, so such a forged row verifies.  With a key, only its holders
    can write a row that verifies (docs/architecture.md §3.2).
    """
    if settings.audit_key:
        return None
    return (
        f"no VUTF_AUDIT_KEY is set: role {role!r} may append audit rows, and without a key "
        "a correctly linked forged row verifies like a real one (`vutf audit verify` cannot "
        "tell them apart); set VUTF_AUDIT_KEY, the same secret for every vutf that writes or "
        "verifies this log, so that only its holders can write rows that verify"
    )


@dataclass(frozen=True, slots=True)
class RuntimeRoleSql:
    """The grant (or revoke) script for a runtime role, rendered offline (``--sql``)."""

    dialect: str
    role: str
    database_name: str
    sql: str


@dataclass(frozen=True, slots=True)
class RuntimeRoleResult:
    """A runtime role after `vutf db grant-runtime` / `revoke-runtime`.

    The four table fields are the privileges the role holds *now*, however
    obtained (read back from the catalog, not what was asked for).
    """

    database: str
    database_name: str
    schema: str
    role: str
    created: bool
    can_login: bool
    hard_delete: bool
    users: tuple[str, ...]
    api_keys: tuple[str, ...]
    audit_log: tuple[str, ...]
    roles: tuple[str, ...]
    user_roles: tuple[str, ...]
    alembic_version: tuple[str, ...]


ROLE_RESOURCE = "role"

_OWNER_HINT = (
    "run it as the owner of the vutf tables (the role that ran `vutf db upgrade`) "
    "or a superuser; --create also needs the CREATEROLE attribute"
)


def require_postgresql(settings: Settings, command: str) -> str:
    """The database name of a PostgreSQL URL; InvalidInput (2) for SQLite."""
    from vutf_cli.db.engine import parse_database_url

    url = parse_database_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"`vutf db {command}` is for PostgreSQL only: SQLite has no roles or privileges "
            f"(the database is {settings.masked_url})",
            hint="give a PostgreSQL URL with --database-url or VUTF_DATABASE_URL",
        )
    if not url.database:
        raise InvalidInput(f"the database URL {settings.masked_url} names no database")
    return url.database


def render_runtime_grant_sql(
    settings: Settings, role: str, *, create: bool = False, hard_delete: bool = True
) -> RuntimeRoleSql:
    """The grant script for ``role``, offline: the database name comes from the URL."""
    from vutf_cli.db import privileges

    database_name = require_postgresql(settings, "grant-runtime")
    statements = privileges.grant_statements(
        role, database=database_name, hard_delete=hard_delete, create=create
    )
    comments = [
        f"vutf runtime role {role!r}: exactly what vutf needs, no DDL, "
        "audit_log append-only (SELECT, INSERT).",
        f"Run it in database {database_name!r} (tables in schema public) as their owner.",
    ]
    if create:
        comments.append("CREATE ROLE fails if the role exists: drop that line then.")
    comments.append("Logging in is the DBA's step: ALTER ROLE ... LOGIN PASSWORD '...';")
    return RuntimeRoleSql(
        dialect="postgresql",
        role=role,
        database_name=database_name,
        sql=privileges.render_script(statements, comments=comments),
    )


def render_runtime_revoke_sql(settings: Settings, role: str) -> RuntimeRoleSql:
    from vutf_cli.db import privileges

    database_name = require_postgresql(settings, "revoke-runtime")
    statements = privileges.revoke_statements(role, database=database_name)
    return RuntimeRoleSql(
        dialect="postgresql",
        role=role,
        database_name=database_name,
        sql=privileges.render_script(
            statements, comments=[f"take back the vutf runtime privileges of {role!r}"]
        ),
    )


def _execute_privileged(uow: UnitOfWork, statements: list[str]) -> None:
    """Run DCL statements; the server refusing (42501) is Denied (5)."""
    from sqlalchemy.exc import DBAPIError

    from vutf_cli.db.resilience import describe

    connection = uow.session.connection()
    for statement in statements:
        try:
            # no_parameters: psycopg2 then leaves a % (legal in a quoted role
            # name) alone, so the text sent is exactly the text --sql prints.
            connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == "42501":
                raise Denied(f"the database refused: {describe(exc)}", hint=_OWNER_HINT) from exc
            raise


def _require_administrator(connection: Connection, schema: str) -> None:
    """Denied (5) unless this connection's role may change privileges on every vutf table."""
    from sqlalchemy import text

    from vutf_cli.db import privileges

    refused = privileges.not_administered(connection, schema=schema)
    if refused:
        who = connection.execute(text("SELECT current_user")).scalar_one()
        raise Denied(
            f"role {who!r} may not change privileges on {', '.join(refused)}: "
            "only their owner (or a superuser) may",
            hint=_OWNER_HINT,
        )


def _runtime_result(
    *,
    role: str,
    schema: str,
    database_name: str,
    created: bool,
    can_login: bool,
    hard_delete: bool,
    held: dict[str, tuple[str, ...]],
    masked_url: str,
) -> RuntimeRoleResult:
    return RuntimeRoleResult(
        database=masked_url,
        database_name=database_name,
        schema=schema,
        role=role,
        created=created,
        can_login=can_login,
        hard_delete=hard_delete,
        users=held["users"],
        api_keys=held["api_keys"],
        audit_log=held["audit_log"],
        roles=held["roles"],
        user_roles=held["user_roles"],
        alembic_version=held["alembic_version"],
    )


def grant_runtime(
    db: Database, role: str, *, create: bool = False, hard_delete: bool = True
) -> RuntimeRoleResult:
    """Give ``role`` exactly the runtime privileges (see :mod:`vutf_cli.db.privileges`).

    All in one transaction with its ``db.grant_runtime`` audit row: the
    grants, then a read-back of what the role now holds, however obtained.
    Refused (nothing changed, a failure row written): a missing role without
    ``create`` (NotFound, 3); a superuser, an owner of the vutf tables (or a
    member of the owner), or a role that would still hold more than the
    runtime set through PUBLIC or another role (Conflict, 4); an operator who
    may not grant (Denied, 5).  SQLite: InvalidInput (2), before connecting.
    """
    from vutf_cli.db import privileges
    from vutf_cli.services import audit_trail
    from vutf_cli.services.audit_trail import mutate

    require_postgresql(db.settings, "grant-runtime")
    privileges.check_role_name(role)
    db.ensure_schema()
    allowed = privileges.runtime_privileges(hard_delete=hard_delete)

    def grant(uow: UnitOfWork) -> RuntimeRoleResult:
        connection = uow.session.connection()
        schema = privileges.vutf_schema(connection)
        database_name = privileges.current_database(connection)
        _require_administrator(connection, schema)
        facts = privileges.role_facts(connection, role, schema=schema)
        created = False
        if facts is None:
            if not create:
                raise NotFound(
                    f"there is no role {role!r}",
                    hint="add --create to create it (NOLOGIN), or create it yourself first",
                )
            _execute_privileged(uow, [f"CREATE ROLE {privileges.quote_identifier(role)} NOLOGIN"])
            created = True
            facts = privileges.role_facts(connection, role, schema=schema)
            assert facts is not None
        if facts.superuser:
            raise Conflict(
                f"role {role!r} is a superuser: no privilege can restrict it",
                hint="use a role without SUPERUSER for vutf's day-to-day commands",
            )
        if facts.owns:
            raise Conflict(
                f"role {role!r} owns (or is a member of the owner of) {', '.join(facts.owns)}: "
                "an owner can alter the tables, disable their triggers and grant itself anything",
                hint="use a role that owns nothing; keep the owner for `vutf db upgrade`",
            )
        _execute_privileged(
            uow,
            privileges.grant_statements(
                role, database=database_name, schema=schema, hard_delete=hard_delete
            ),
        )
        held = privileges.effective_privileges(connection, role, schema=schema)
        # A GRANT without the right to grant is only a warning: check it took.
        missing = privileges.excess_privileges(allowed, held)
        if missing:
            listed = "; ".join(f"{table}: {', '.join(lack)}" for table, lack in missing.items())
            raise Denied(
                f"the database did not grant {listed} to role {role!r}: "
                "this connection's role may not grant them; nothing was changed",
                hint=_OWNER_HINT,
            )
        if not privileges.may_connect_and_use(
            connection, role, database=database_name, schema=schema
        ):
            raise Denied(
                f"role {role!r} still may not connect to {database_name} or use schema {schema}: "
                "granting those needs the database's and the schema's owner",
                hint=_OWNER_HINT,
            )
        excess = privileges.excess_privileges(held, allowed)
        if excess:
            listed = "; ".join(f"{table}: {', '.join(extra)}" for table, extra in excess.items())
            raise Conflict(
                f"role {role!r} would still hold more than vutf needs ({listed}), "
                "through PUBLIC or a role it is a member of; nothing was changed",
                hint="revoke those grants or memberships (\\dp and \\du in psql show them)",
            )
        audit_trail.append(
            uow,
            action="db.grant_runtime",
            resource_type=ROLE_RESOURCE,
            resource_id=role,
            changes={
                "database": database_name,
                "schema": schema,
                "created": created,
                "hard_delete": hard_delete,
                "privileges": {table: list(names) for table, names in held.items()},
            },
        )
        return _runtime_result(
            role=role,
            schema=schema,
            database_name=database_name,
            created=created,
            can_login=facts.can_login,
            hard_delete=hard_delete,
            held=held,
            masked_url=db.settings.masked_url,
        )

    return mutate(
        db, grant, action="db.grant_runtime", resource_type=ROLE_RESOURCE, resource_id=role
    )


def revoke_runtime(db: Database, role: str) -> RuntimeRoleResult:
    """Take back what :func:`grant_runtime` gave (the role itself stays).

    The result lists what the role still holds afterwards (through PUBLIC
    or memberships), which is usually nothing.
    """
    from vutf_cli.db import privileges
    from vutf_cli.services import audit_trail
    from vutf_cli.services.audit_trail import mutate

    require_postgresql(db.settings, "revoke-runtime")
    privileges.check_role_name(role)
    db.ensure_schema()

    def revoke(uow: UnitOfWork) -> RuntimeRoleResult:
        connection = uow.session.connection()
        schema = privileges.vutf_schema(connection)
        database_name = privileges.current_database(connection)
        _require_administrator(connection, schema)
        facts = privileges.role_facts(connection, role, schema=schema)
        if facts is None:
            raise NotFound(f"there is no role {role!r}")
        _execute_privileged(
            uow, privileges.revoke_statements(role, database=database_name, schema=schema)
        )
        left = privileges.direct_grants(connection, role, schema=schema)
        if left:
            listed = "; ".join(f"{table}: {', '.join(names)}" for table, names in left.items())
            raise Denied(
                f"role {role!r} keeps {listed}: granted by a role this connection cannot "
                "act for; nothing was changed",
                hint=_OWNER_HINT,
            )
        held = privileges.effective_privileges(connection, role, schema=schema)
        audit_trail.append(
            uow,
            action="db.revoke_runtime",
            resource_type=ROLE_RESOURCE,
            resource_id=role,
            changes={
                "database": database_name,
                "schema": schema,
                "privileges_left": {table: list(names) for table, names in held.items()},
            },
        )
        return _runtime_result(
            role=role,
            schema=schema,
            database_name=database_name,
            created=False,
            can_login=facts.can_login,
            hard_delete="DELETE" in held["users"],
            held=held,
            masked_url=db.settings.masked_url,
        )

    return mutate(
        db, revoke, action="db.revoke_runtime", resource_type=ROLE_RESOURCE, resource_id=role
    )
