"""Case ``auth.timing``: a login costs the same whoever and whatever it is about.

Issue 11 item 7 / issue 13 item 4: an unknown user, a wrong password, a user
whose stored hash is weaker than the configured argon2 profile and a locked
user must not be told apart by the time a password check takes.  For each
backend, on a database of its own, :func:`measure` times ``CHECKS`` calls of
``services.user_passwords.check_password`` (what ``vutf users
check-password`` and the Python API run, audit row included) per kind,
interleaved round by round (the order rotates every round, to cancel drift),
after ``WARMUP`` untimed rounds, and reports each kind's median and its ratio
to the wrong-password median.  The goal: every median within 10% of every
other.  The test suite proves the cause (one argon2 hash at the configured
parameters on every path, ``tests/integration/test_password_checks.py``);
this measures the effect.

The argon2 profile is ``production`` unless ``VUTF_BENCH_AUTH_PROFILE`` says
otherwise (``test`` for a quick smoke run: then the database, not argon2,
dominates, and the figures say little).  The weak stored hash has Django
3.1's argon2 defaults (m=512, t=2, p=2), a real legacy hash that ``users
import --allow-weak-hashes`` lets in.  Every check is a wrong password (a
right one would rehash the weak hash away); lockout is off for the plain
users (threshold 0) so fifty failures do not lock them, and the locked user
is locked by hand until long after the run.

``python -m tests.benchmarks.auth_timing --backend sqlite`` runs it alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from tests.benchmarks.seed import Resources
    from tests.benchmarks.settings import Settings
    from vutf_cli.db.database import Database

CASE: Final = "auth.timing"
CHECKS: Final = 50
WARMUP: Final = 3
GOAL_SPREAD: Final = 0.10
PROFILE_VARIABLE: Final = "VUTF_BENCH_AUTH_PROFILE"
PASSWORD: Final = "correct horse battery staple"
WRONG: Final = "not the password of anyone here"
# (kind, username): the order of the report; the ratios are to "wrong password".
KINDS: Final = (
    ("unknown user", "nobody-at-all"),
    ("wrong password", "plain"),
    ("weak stored hash", "weak"),
    ("locked user", "locked"),
)
REFERENCE: Final = "wrong password"


def _prepare(db: Database) -> None:
    """The three users; the weak one's hash and the lock are set as stored values."""
    import dataclasses

    import sqlalchemy as sa
    from argon2 import PasswordHasher

    from vutf_cli.db.models import User

    weak = PasswordHasher.from_parameters(
        dataclasses.replace(db.passwords.parameters, memory_cost=512, time_cost=2, parallelism=2)
    ).hash(PASSWORD)
    users = cast(sa.Table, User.__table__)
    profile_hash = db.passwords.hash(PASSWORD)

    def create(uow: Any) -> None:
        for name in ("plain", "weak", "locked"):
            uow.users.create_user(
                username=name, email=f"{name}@example.org", password_hash=profile_hash
            )
        uow.session.flush()
        uow.session.execute(
            sa.update(users).where(users.c.username == "weak").values(password_hash=weak)
        )
        uow.session.execute(
            sa.update(users)
            .where(users.c.username == "locked")
            .values(locked_until=datetime(2999, 1, 1, tzinfo=UTC))
        )

    db.run(create)


def time_checks(db: Database, *, checks: int = CHECKS, warmup: int = WARMUP) -> dict[str, Any]:
    """Seconds of every timed check per kind, and the audit rows written."""
    from vutf_cli.errors import Denied
    from vutf_cli.services import user_passwords

    samples: dict[str, list[float]] = {kind: [] for kind, _ in KINDS}
    for round_index in range(warmup + checks):
        shift = round_index % len(KINDS)
        for kind, username in KINDS[shift:] + KINDS[:shift]:
            started = time.perf_counter()
            try:
                user_passwords.check_password(db, username, WRONG)
            except Denied:
                pass
            else:
                raise RuntimeError(f"{kind}: the check passed")
            if round_index >= warmup:
                samples[kind].append(time.perf_counter() - started)
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, Any]:
    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    reference = medians[REFERENCE]
    spread = max(medians.values()) / min(medians.values()) - 1
    return {
        "medians_ms": {kind: value * 1000 for kind, value in medians.items()},
        "ratios": {kind: value / reference for kind, value in medians.items()},
        "spread": spread,
        "met": spread <= GOAL_SPREAD,
    }


def run_backend(url: str, profile: str, *, checks: int = CHECKS) -> dict[str, Any]:
    from vutf_cli.db.database import Database
    from vutf_cli.settings import Settings

    db = Database(
        Settings(
            database_url=url,
            actor="bench@auth-timing",
            argon2_profile=profile,
            lockout_threshold=0,  # fifty failures do not lock "plain" and "weak"
        )
    )
    try:
        _prepare(db)
        summary = summarize(time_checks(db, checks=checks))
        written = db.run(_login_rows, read_only=True)
    finally:
        db.dispose()
    expected = (checks + WARMUP) * len(KINDS)
    if written != expected:
        raise RuntimeError(f"{CASE}: {written} user.login rows for {expected} checks")
    return {**summary, "profile": profile, "checks": checks, "audit_rows_written": written}


def _login_rows(uow: Any) -> int:
    import sqlalchemy as sa

    from vutf_cli.db.models import AuditLog

    count = uow.session.scalar(
        sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "user.login")
    )
    return int(count or 0)


def line(backend: str, result: dict[str, Any]) -> str:
    kinds = ", ".join(
        f"{kind} {result['medians_ms'][kind]:.1f} ms ({result['ratios'][kind]:.3f}x)"
        for kind, _ in KINDS
    )
    return (
        f"{CASE} ({backend}, argon2 {result['profile']}): medians of {result['checks']} "
        f"checks: {kinds}; spread {result['spread'] * 100:.1f}% "
        f"(goal <= {GOAL_SPREAD * 100:.0f}%): {'met' if result['met'] else 'NOT met'}"
    )


# -- the runner's side ----------------------------------------------------------------------
def measure(settings: Settings, resources: Resources) -> tuple[list[str], list[dict[str, Any]]]:
    """Every backend of the run, each on a new database: the report lines and the results."""
    from tests.benchmarks.seed import progress

    profile = os.environ.get(PROFILE_VARIABLE, "production")
    checks = settings.scaled(CHECKS, 3)  # the notes' smoke run (--scale 0.001): 3 of each
    lines: list[str] = []
    results: list[dict[str, Any]] = []
    for backend in settings.backends:
        database = resources.farm.create(backend, "auth")
        finish = progress(f"{CASE} ({backend}): {checks} checks x {len(KINDS)} kinds")
        result = run_backend(database.url, profile, checks=checks)
        finish()
        lines.append(line(backend, result))
        results.append({"backend": backend, **result})
    return lines, results


def main(argv: Sequence[str] | None = None) -> int:
    """Run this case alone: its own databases, dropped at the end."""

    from tests.benchmarks import seed

    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.auth_timing")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--checks", type=int, default=CHECKS)
    parser.add_argument(
        "--profile", default=os.environ.get(PROFILE_VARIABLE, "production"), help="argon2 profile"
    )
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    with seed.standalone_farm("auth") as (farm, _, _):
        for backend in backends:
            database = farm.create(backend, "auth")
            print(line(backend, run_backend(database.url, args.profile, checks=args.checks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
