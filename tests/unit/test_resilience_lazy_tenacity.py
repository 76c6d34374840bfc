"""tenacity is imported only when a retry is needed, and retries then behave as before.

Each case runs in a fresh interpreter: in this one, other tests have long
imported tenacity.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

TIMEOUT = 120.0

PRELUDE = """
import json, sys
from sqlalchemy import exc as sa_exc
from vutf_cli.db.resilience import CircuitBreaker, RetryPolicy, run_with_retry

class Clock:
    def __init__(self):
        self.now, self.sleeps = 1000.0, []
    def __call__(self):
        return self.now
    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

def refused():
    return sa_exc.OperationalError(
        "SELECT 1", None, Exception("could not connect to server: Connection refused"))

clock = Clock()
policy = RetryPolicy(deadline=10.0, initial_wait=0.1, max_wait=0.5, jitter=0.0)
breaker = CircuitBreaker(failure_threshold=10, clock=clock)
"""


def _run(body: str) -> dict[str, Any]:
    code = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_a_first_attempt_that_succeeds_does_not_import_tenacity() -> None:
    answer = _run(
        """
        result = run_with_retry(lambda: "ok", policy=policy, breaker=breaker, target="db",
                                sleep=clock.sleep, clock=clock)
        print(json.dumps({"result": result, "tenacity": "tenacity" in sys.modules,
                          "state": breaker.state}))
        """
    )
    assert answer == {"result": "ok", "tenacity": False, "state": "closed"}


def test_a_permanent_failure_does_not_import_tenacity_either() -> None:
    answer = _run(
        """
        def fails():
            raise ValueError("a bug")
        try:
            run_with_retry(fails, policy=policy, breaker=breaker, target="db",
                           sleep=clock.sleep, clock=clock)
        except ValueError as exc:
            raised = str(exc)
        print(json.dumps({"raised": raised, "tenacity": "tenacity" in sys.modules,
                          "sleeps": clock.sleeps}))
        """
    )
    assert answer == {"raised": "a bug", "tenacity": False, "sleeps": []}


def test_after_a_transient_failure_the_backoff_starts_at_the_first_wait() -> None:
    """The failure seen before tenacity was imported counts as its attempt 1."""
    answer = _run(
        """
        failures = [refused(), refused(), refused()]
        seen = []
        def flaky():
            if failures:
                raise failures.pop(0)
            return "ok"
        result = run_with_retry(flaky, policy=policy, breaker=breaker, target="db",
                                before_retry=lambda exc: seen.append(type(exc).__name__),
                                sleep=clock.sleep, clock=clock)
        print(json.dumps({"result": result, "tenacity": "tenacity" in sys.modules,
                          "sleeps": clock.sleeps, "seen": seen,
                          "failures": breaker.consecutive_failures}))
        """
    )
    assert answer == {
        "result": "ok",
        "tenacity": True,
        "sleeps": [0.1, 0.2, 0.4],
        "seen": ["OperationalError"] * 3,
        "failures": 0,
    }
