"""The circuit breaker shared by one process (docs/architecture.md §4).

closed → open after N consecutive connection failures → half-open after a
cool-down, which lets one trial call through.  While it is open, calls fail
at once instead of each waiting out its own retry deadline.  Only
:meth:`vutf_cli.db.database.Database.run` drives it (see ``Database._guarded``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from vutf_cli.errors import DatabaseUnavailable

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]

BreakerState = Literal["closed", "open", "half_open"]


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

    def renew_lock_after_fork(self) -> None:
        """In a forked child: a new lock (one held by another thread at the fork stays held)."""
        self._lock = threading.Lock()

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
