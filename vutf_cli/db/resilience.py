"""Error classification, bounded retries and a circuit breaker (DESIGN.md section 4).

Everything that talks to the database runs through :func:`run_with_retry`:

* :func:`classify` sorts an exception into one :class:`ErrorKind`.  Only
  ``CONNECTION`` and ``CONTENTION`` are retried; the whole unit of work
  (a transaction) is re-run, never half of one.
* Retries use exponential backoff with jitter and stop before a total
  deadline, so a command with the database down ends in bounded time with
  :class:`~vutf_cli.errors.DatabaseUnavailable` (exit code 7).
* A :class:`CircuitBreaker` shared by the process makes later operations fail
  fast once the database has been unreachable N times in a row.

The module knows SQLAlchemy's exception wrappers but is driver-agnostic: the
SQLSTATE is read with ``getattr`` (``pgcode`` for psycopg2, ``sqlstate`` for
psycopg 3) and libpq's connect-time messages are matched as text, because
psycopg2 leaves ``pgcode`` empty for every error raised while connecting.

tenacity is imported only once a retry is needed: the first attempt runs
without it (most operations succeed at once, and importing it costs a command
a few milliseconds).
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Literal, TypeVar

from sqlalchemy import exc as sa_exc

from vutf_cli.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying, wait_exponential_jitter

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "ErrorKind",
    "RetryPolicy",
    "classify",
    "describe",
    "run_with_retry",
]

T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]


class ErrorKind(Enum):
    """How a failure should be handled."""

    CONNECTION = "connection"  # transient: the server is unreachable or dropped us
    CONTENTION = "contention"  # transient: serialization failure, deadlock, SQLite busy
    CREDENTIALS = "credentials"  # the server answered "no": retrying cannot help
    PERMANENT = "permanent"  # everything else, re-raised untouched


_RETRYABLE = frozenset({ErrorKind.CONNECTION, ErrorKind.CONTENTION})

# SQLSTATEs (see the PostgreSQL "Error Codes" appendix).
_CONNECTION_STATES = frozenset(
    {
        "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "53300",  # too_many_connections
    }
)
_CONTENTION_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

# libpq reports connect-time failures without a SQLSTATE, so the message is
# all there is.  Checked (lower-cased) only for database errors without one.
_CREDENTIAL_PATTERNS = (
    re.compile(r"password authentication failed"),
    re.compile(r"\b(?:peer|ident|sspi|gss|cert|radius|ldap|pam) authentication failed"),
    re.compile(r'role ".*" does not exist'),
    re.compile(r"no pg_hba\.conf entry"),
    re.compile(r"no password supplied"),
)
_CONNECTION_MARKERS = (
    "could not connect",
    "connection refused",
    "server closed the connection unexpectedly",
    "timeout expired",
    "could not translate host name",  # DNS can fail transiently
    "ssl connection has been closed",
    "ssl connection closed",
    "ssl syscall error",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "no connection to the server",
    "connection already closed",
    "connection reset by peer",
    "connection timed out",
    "network is unreachable",
    "no route to host",
    # Connect-time forms of 57P03 and 53300, which arrive without a pgcode.
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "too many clients already",
    "too many connections for role",
    "remaining connection slots are reserved",
)
_SQLITE_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")

_MAX_REASON = 300


def _driver_error(exc: BaseException) -> BaseException:
    """The exception SQLAlchemy wrapped (a DB-API error, or e.g. a TypeError), or ``exc``."""
    # StatementError.__str__ appends the SQL (and parameters unless hidden).
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, BaseException):
        return exc.orig
    return exc


def _sqlstate(err: BaseException) -> str | None:
    for attr in ("pgcode", "sqlstate"):
        value = getattr(err, attr, None)
        if isinstance(value, str) and value:
            return value.upper()
    return None


def _is_sqlite_error(err: BaseException) -> bool:
    # Only a SQLite connection raises sqlite3 errors, and it has imported
    # sqlite3; a PostgreSQL command need not import it (a couple of ms).
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(err, sqlite3.Error)


def _is_database_error(exc: BaseException, err: BaseException) -> bool:
    # psycopg2 errors always carry a (possibly None) ``pgcode`` attribute.
    return (
        isinstance(exc, sa_exc.DBAPIError)
        or _is_sqlite_error(err)
        or hasattr(err, "pgcode")
        or hasattr(err, "sqlstate")
    )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def classify(exc: BaseException) -> ErrorKind:
    """Sort ``exc`` into the kind of failure it represents (see :class:`ErrorKind`)."""
    if isinstance(exc, sa_exc.DisconnectionError):
        return ErrorKind.CONNECTION
    err = _driver_error(exc)
    if not _is_database_error(exc, err):
        return ErrorKind.PERMANENT

    state = _sqlstate(err)
    if state is not None:
        if state.startswith("08") or state in _CONNECTION_STATES:
            return ErrorKind.CONNECTION
        if state in _CONTENTION_STATES:
            return ErrorKind.CONTENTION
        if state.startswith("28"):
            return ErrorKind.CREDENTIALS
        # 57014 (statement timeout), VU001 (audit trigger), 23xxx, 22xxx, 42xxx ...
        return ErrorKind.PERMANENT

    # SQLAlchemy's dialect already recognised a disconnect.
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return ErrorKind.CONNECTION

    if _is_sqlite_error(err):
        name = getattr(err, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return ErrorKind.CONTENTION

    message = str(err).lower()
    if any(marker in message for marker in _SQLITE_BUSY_MARKERS):
        return ErrorKind.CONTENTION
    # Credentials first: libpq prefixes them with 'connection to server ... failed'.
    if any(pattern.search(message) for pattern in _CREDENTIAL_PATTERNS):
        return ErrorKind.CREDENTIALS
    if any(marker in message for marker in _CONNECTION_MARKERS):
        return ErrorKind.CONNECTION
    return ErrorKind.PERMANENT


def describe(exc: BaseException) -> str:
    """A one-line reason for ``exc`` that is safe to show.

    Only the driver's own message is used (never ``str()`` of a SQLAlchemy
    wrapper, which appends the SQL and possibly its parameters), cut to its
    first line so DETAIL lines such as ``Key (email)=(...)`` are dropped.
    """
    err = _driver_error(exc)
    reason = _first_line(str(err))
    state = _sqlstate(err)
    if state is not None and state.startswith("22"):
        # Data exceptions quote the offending input value, which may be a secret.
        reason = re.sub(r'"[^"]*"', '"…"', reason)
    if not reason:
        reason = type(err).__name__
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    return reason


class CircuitOpenError(DatabaseUnavailable):
    """Raised by :meth:`CircuitBreaker.before_call` while calls are refused."""

    def __init__(self, message: str, *, retry_in: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_in = retry_in


class CircuitBreaker:
    """closed → open after N consecutive connection failures → half-open after a cool-down.

    (``trip()`` opens it at once.)

    While open, calls fail at once instead of each waiting for its own
    deadline.  Half-open lets exactly one trial call through; its outcome
    closes or re-opens the circuit.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def before_call(self) -> None:
        """Let a call through, or raise :class:`CircuitOpenError`."""
        with self._lock:
            if self._state == "closed":
                return
            if self._state == "open":
                remaining = self._opened_at + self.reset_timeout - self._clock()
                if remaining > 0:
                    raise CircuitOpenError(
                        f"circuit breaker is open after {self._failures} consecutive "
                        f"connection failures; next attempt allowed in {remaining:.1f} s",
                        retry_in=remaining,
                        hint="the database was unreachable; try again later",
                    )
                self._state = "half_open"
            # half_open: one trial at a time, so a recovering server is probed once.
            if self._trial_in_flight:
                raise CircuitOpenError(
                    "circuit breaker is half-open and a trial call is in progress; "
                    "next attempt allowed once it ends",
                    retry_in=0.0,
                    hint="the database was unreachable; try again shortly",
                )
            self._trial_in_flight = True

    def record_success(self) -> None:
        """The database answered: close the circuit."""
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """A connection failure: count it, and open at the threshold."""
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state == "half_open":
                # The trial failed: a fresh cool-down.
                self._state = "open"
                self._opened_at = self._clock()
            elif self._state == "closed" and self._failures >= self.failure_threshold:
                self._state = "open"
                self._opened_at = self._clock()

    def trip(self) -> None:
        """Open the circuit now, with a fresh cool-down.

        For an operation that used up its whole deadline on connection
        failures: as sure a sign of an outage as N failed attempts, whatever
        the deadline allowed N to reach.
        """
        with self._lock:
            self._state = "open"
            self._opened_at = self._clock()
            self._trial_in_flight = False

    def release(self) -> None:
        """End a call that said nothing about the database's health.

        Frees the half-open trial slot without changing state, so a call that
        failed for an unrelated reason (a bug, Ctrl-C) cannot wedge the circuit.
        """
        with self._lock:
            self._trial_in_flight = False


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters; all values in seconds."""

    deadline: float = 15.0
    initial_wait: float = 0.05
    max_wait: float = 2.0
    jitter: float = 0.1


@cache
def _jitter_has_multiplier() -> bool:
    """tenacity 9.2 renamed ``initial`` to ``multiplier`` (``initial`` now warns);
    older releases only know ``initial``."""
    from tenacity import wait_exponential_jitter

    return "multiplier" in inspect.signature(wait_exponential_jitter.__init__).parameters


def _backoff(policy: RetryPolicy) -> wait_exponential_jitter:
    from tenacity import wait_exponential_jitter

    if _jitter_has_multiplier():
        return wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        )
    return wait_exponential_jitter(
        initial=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
    )


def _is_retryable(exc: BaseException) -> bool:
    return classify(exc) in _RETRYABLE


def _retrying(
    policy: RetryPolicy,
    deadline_at: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Retrying:
    from tenacity import Retrying, retry_if_exception

    def stop(retry_state: RetryCallState) -> bool:
        # tenacity computes the wait before asking whether to stop, so this
        # gives up instead of sleeping past the deadline.  The caller's clock
        # is used (tenacity's own timing is always time.monotonic).
        return clock() + retry_state.upcoming_sleep >= deadline_at

    return Retrying(
        sleep=sleep,
        stop=stop,
        wait=_backoff(policy),
        retry=retry_if_exception(_is_retryable),
        reraise=True,  # the last real exception, not tenacity's RetryError
    )


def _replaying(failure: BaseException, attempt: Callable[[], T]) -> Callable[[], T]:
    """``attempt``, whose first call re-raises ``failure`` instead of running.

    The first attempt runs before tenacity is involved; replaying its failure
    makes it tenacity's attempt 1, so the backoff and the stop decision are
    those of a loop that had run every attempt itself.
    """
    replayed = False

    def call() -> T:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise failure
        return attempt()

    return call


def _record_outcome(breaker: CircuitBreaker, exc: BaseException) -> None:
    kind = classify(exc)
    if kind is ErrorKind.CONNECTION:
        breaker.record_failure()
    elif _is_database_error(exc, _driver_error(exc)):
        # The server answered (with a refusal, a conflict, a constraint error...).
        breaker.record_success()
    else:
        breaker.release()


def run_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    breaker: CircuitBreaker | None,
    target: str,
    before_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures until the deadline.

    ``fn`` must be a whole unit of work (open, run and commit a transaction),
    because it is re-run from the start.  ``before_retry(exc)`` runs at the
    start of every attempt after the first (after the backoff sleep), with the
    exception that caused the retry; it is where the caller checks whether a
    write whose COMMIT outcome was unknown did in fact commit.  Whatever it
    raises is treated like an exception from ``fn``.

    ``target`` is the masked URL used in messages.  Raises
    :class:`DatabaseUnavailable` for credential errors (at once) and for
    transient errors that outlast the deadline.  A :class:`CircuitOpenError`
    from the breaker propagates at once (its message prefixed with the
    target), and every permanent error propagates unchanged.
    """
    started = clock()
    deadline_at = started + policy.deadline
    attempts = 0
    last_exc: BaseException | None = None

    def attempt() -> T:
        nonlocal attempts, last_exc
        attempts += 1
        if breaker is not None:
            try:
                breaker.before_call()
            except CircuitOpenError as refused:
                # Same class (still no retry), but naming the target like every
                # other unavailability message, with the error that led here.
                hint = f"last error: {describe(last_exc)}" if last_exc else refused.hint
                raise CircuitOpenError(
                    f"database unavailable at {target}: {refused.message}",
                    retry_in=refused.retry_in,
                    hint=hint,
                ) from (last_exc or refused)
        try:
            if last_exc is not None and before_retry is not None:
                before_retry(last_exc)
            result = fn()
        except BaseException as exc:
            last_exc = exc
            if breaker is not None:
                _record_outcome(breaker, exc)
            raise
        if breaker is not None:
            breaker.record_success()
        return result

    try:
        try:
            return attempt()
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            first_failure = exc
        # Outside the except block, so later errors do not chain to this one.
        retrying = _retrying(policy, deadline_at, sleep, clock)
        return retrying(_replaying(first_failure, attempt))
    except CircuitOpenError:
        raise
    except Exception as exc:
        kind = classify(exc)
        if kind is ErrorKind.PERMANENT:
            raise
        reason = describe(exc)
        if kind is ErrorKind.CREDENTIALS:
            raise DatabaseUnavailable(
                f"cannot log in to {target}: {reason}",
                hint="check the user name, password and pg_hba.conf rules",
            ) from exc
        elapsed = clock() - started
        tried = f"gave up after {attempts} attempt(s) in {elapsed:.1f} s"
        if kind is ErrorKind.CONNECTION:
            raise DatabaseUnavailable(
                f"database unavailable at {target}: {reason}",
                hint=f"{tried}; check that the server is running and reachable "
                "(the deadline is VUTF_DB_DEADLINE)",
            ) from exc
        raise DatabaseUnavailable(
            f"database busy at {target}: {reason}",
            hint=f"{tried}; concurrent transactions kept conflicting, try again",
        ) from exc
