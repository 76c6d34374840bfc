"""How ``Database`` drives the circuit breaker when the server answers (SQLite and PostgreSQL).

An unreachable server is in test_resilience_postgres.py; here the database is
up, and the point is what an answer, or a call that says nothing about the
server, does to a circuit that is half-open.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from vutf_cli.db.breaker import CircuitBreaker
from vutf_cli.db.database import Database
from vutf_cli.errors import InternalError
from vutf_cli.settings import Settings


def state_of(db: Database) -> str:
    # A plain str, so that mypy does not narrow the Literal across state changes.
    return db.breaker.state


@pytest.fixture
def half_open() -> CircuitBreaker:
    """A breaker whose next call is the half-open trial."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0)
    breaker.record_failure()
    assert breaker.state == "open"
    return breaker


@pytest.fixture
def guarded_db(settings: Settings, half_open: CircuitBreaker) -> Iterator[Database]:
    database = Database(settings, breaker=half_open)
    try:
        yield database
    finally:
        database.dispose()


def test_a_trial_that_succeeds_closes_the_circuit(guarded_db: Database) -> None:
    assert guarded_db.run(lambda uow: uow.schema_revision(), read_only=True) is not None
    assert guarded_db.breaker.state == "closed"
    assert guarded_db.breaker.consecutive_failures == 0


def test_a_refusal_from_the_server_closes_the_circuit(guarded_db: Database) -> None:
    with pytest.raises(InternalError, match="database error"):
        guarded_db.run(
            lambda uow: uow.session.execute(text("SELECT * FROM no_such_table")), read_only=True
        )
    # The server answered, so it is reachable.
    assert guarded_db.breaker.state == "closed"


def test_ctrl_c_in_a_trial_does_not_wedge_the_circuit(guarded_db: Database) -> None:
    def interrupted(_uow: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guarded_db.run(interrupted, read_only=True)
    assert state_of(guarded_db) == "half_open"
    # The trial slot was freed: the next call is let through, and closes it.
    guarded_db.run(lambda uow: uow.schema_revision(), read_only=True)
    assert state_of(guarded_db) == "closed"


def test_run_operation_drives_the_same_breaker(guarded_db: Database) -> None:
    def operation() -> int:
        with guarded_db.engine.connect() as connection:
            return int(connection.execute(text("SELECT 41 + 1")).scalar_one())

    assert guarded_db.run_operation(operation) == 42
    assert guarded_db.breaker.state == "closed"
