"""The retry policy: bounded retries of a whole unit of work (docs/architecture.md §4).

:func:`run_with_retry` re-runs an operation that failed for a transient
reason (:data:`vutf_cli.db.resilience.RETRYABLE`) with exponential backoff
and jitter, and stops before a total deadline, so a command with the
database down ends in bounded time with
:class:`~vutf_cli.errors.DatabaseUnavailable` (exit code 7).  The circuit
breaker is not its business: ``Database`` drives that around it.

Retries are visible: a :class:`RetryPolicy` may carry ``on_retry``, which is
called before each pause (tenacity's ``before_sleep``) with a
:class:`RetryNotice` (the attempt that failed, why, the pause, the time
left), and once with None when the retrying is over, whatever its outcome.
The command line shows it on a terminal (``cli/context.py``); the library
calls nothing by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from vutf_cli.db.resilience import RETRYABLE, ErrorKind, classify, describe
from vutf_cli.errors import DatabaseUnavailable

__all__ = ["RetryNotice", "RetryPolicy", "run_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A retry about to happen: attempt ``attempt`` failed; the next one in ``next_in`` s."""

    attempt: int
    reason: str  # describe() of the error: safe to show
    busy: bool  # contention (the database answered, but busy) rather than unreachable
    next_in: float
    gives_up_in: float  # seconds until the deadline
    target: str  # the masked URL


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters (all values in seconds), and who hears of each retry."""

    deadline: float = 15.0
    initial_wait: float = 0.05
    max_wait: float = 2.0
    jitter: float = 0.1
    # Called before each pause, then with None once retrying is over (module docstring).
    on_retry: Callable[[RetryNotice | None], None] | None = field(default=None, compare=False)


def _is_retryable(exc: BaseException) -> bool:
    return classify(exc) in RETRYABLE


def _retrying(
    policy: RetryPolicy,
    deadline_at: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    def stop(retry_state: RetryCallState) -> bool:
        # tenacity computes the wait before asking whether to stop, so this
        # gives up instead of sleeping past the deadline.  The caller's clock
        # is used (tenacity's own timing is always time.monotonic).
        return clock() + retry_state.upcoming_sleep >= deadline_at

    return Retrying(
        sleep=sleep,
        stop=stop,
        wait=wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        ),
        retry=retry_if_exception(_is_retryable),
        before_sleep=before_sleep,
        reraise=True,  # the last real exception, not tenacity's RetryError
    )


def run_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    target: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures until the deadline.

    ``fn`` must be a whole unit of work (open, run and commit a transaction),
    because it is re-run from the start.  ``target`` is the masked URL used in
    messages.  Raises :class:`DatabaseUnavailable` for credential errors (at
    once) and for transient errors that outlast the deadline (its
    ``__cause__`` is the last error); every permanent error propagates
    unchanged.
    """
    started = clock()
    deadline_at = started + policy.deadline
    attempts = 0
    notified = False

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    def before_sleep(retry_state: RetryCallState) -> None:
        nonlocal notified
        if policy.on_retry is None or retry_state.outcome is None:
            return
        error = retry_state.outcome.exception()
        if error is None:
            return
        notified = True
        policy.on_retry(
            RetryNotice(
                attempt=retry_state.attempt_number,
                reason=describe(error),
                busy=classify(error) is ErrorKind.CONTENTION,
                next_in=retry_state.upcoming_sleep,
                gives_up_in=max(deadline_at - clock(), 0.0),
                target=target,
            )
        )

    try:
        return _retrying(policy, deadline_at, sleep, clock, before_sleep)(attempt)
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
    finally:
        if notified and policy.on_retry is not None:
            policy.on_retry(None)
