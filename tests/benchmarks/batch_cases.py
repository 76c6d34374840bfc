"""Case ``batch.users-create``: N user creations as N processes vs one ``vutf batch``.

Issue 14: CI scripts start vutf hundreds of times, and every short command
pays Python's start-up and vutf's imports.  For each backend, on a database
of its own, each round creates ``OPERATIONS`` users with ``vutf users create
NAME --email … --password-stdin`` (the cheapest creation: a password must be
given, hashed at the ``test`` argon2 profile as in every benchmark child) once
as that many processes of the installed ``vutf`` and once as one ``vutf
batch`` of the same command lines, the order alternating round by round (to
cancel drift).  Reported: medians of wall and CPU seconds (children's rusage)
and their ratios, batch / processes; every line's exit code is checked.  The
same audit rows are written either way (one ``user.create`` per user).

``python -m tests.benchmarks.batch_cases --backend sqlite`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tests.benchmarks.environment import child_environment, vutf_executable

if TYPE_CHECKING:
    from tests.benchmarks.seed import DatabaseFarm, Resources
    from tests.benchmarks.settings import Settings

CASE: Final = "batch.users-create"
OPERATIONS: Final = 200
ROUNDS: Final = 3
PASSWORD: Final = "correct horse battery staple"


def _args(name: str) -> list[str]:
    return ["users", "create", name, "--email", f"{name}@example.com", "--password-stdin"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def as_processes(env: dict[str, str], names: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``vutf users create`` process per name."""
    vutf = str(vutf_executable())
    cpu, started = _children_cpu(), time.perf_counter()
    for name in names:
        subprocess.run(
            [vutf, *_args(name)],
            input=PASSWORD,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return time.perf_counter() - started, _children_cpu() - cpu


def as_batch(env: dict[str, str], names: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``vutf batch`` creating every name."""
    lines = "".join(json.dumps({"args": _args(name), "stdin": PASSWORD}) + "\n" for name in names)
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(
        [str(vutf_executable()), "batch"],
        input=lines,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall, used = time.perf_counter() - started, _children_cpu() - cpu
    codes = [json.loads(line)["exit_code"] for line in done.stdout.splitlines()]
    if done.returncode != 0 or codes != [0] * len(names):
        raise RuntimeError(f"{CASE}: vutf batch exited {done.returncode}: {done.stderr[-500:]}")
    return wall, used


def run_backend(
    farm: DatabaseFarm, home: Path, backend: str, operations: int, rounds: int
) -> dict[str, Any]:
    database = farm.create(backend, "batch")
    env = child_environment(home, database_url=database.url)
    samples: dict[str, list[tuple[float, float]]] = {"processes": [], "batch": []}
    for round_ in range(rounds):
        kinds = ("processes", "batch") if round_ % 2 == 0 else ("batch", "processes")
        for kind in kinds:
            names = [f"{kind[0]}{round_}-{i}" for i in range(operations)]
            run = as_processes if kind == "processes" else as_batch
            samples[kind].append(run(env, names))
    wall = {kind: statistics.median(s[0] for s in runs) for kind, runs in samples.items()}
    cpu = {kind: statistics.median(s[1] for s in runs) for kind, runs in samples.items()}
    return {
        "operations": operations,
        "rounds": rounds,
        "wall_s": wall,
        "cpu_s": cpu,
        "wall_ratio": wall["batch"] / wall["processes"],
        "cpu_ratio": cpu["batch"] / cpu["processes"],
    }


def line(backend: str, result: dict[str, Any]) -> str:
    wall = result["wall_s"]
    return (
        f"{CASE} ({backend}): {result['operations']} `users create --password-stdin` as "
        f"{result['operations']} processes {wall['processes']:.2f} s vs one `vutf batch` "
        f"{wall['batch']:.2f} s: {result['wall_ratio']:.3f}x wall, {result['cpu_ratio']:.3f}x CPU "
        f"(medians of {result['rounds']} interleaved rounds)"
    )


# -- the runner's side ----------------------------------------------------------------------
def measure(settings: Settings, resources: Resources) -> tuple[list[str], list[dict[str, Any]]]:
    """Every backend of the run, each on a new database: the report lines and the results."""
    from tests.benchmarks.seed import progress

    operations = settings.scaled(OPERATIONS, 5)  # the notes' smoke run (--scale 0.001): 5
    rounds = min(settings.repeat, ROUNDS)
    lines: list[str] = []
    results: list[dict[str, Any]] = []
    for backend in settings.backends:
        finish = progress(f"{CASE} ({backend}): {operations} creations x 2 ways x {rounds}")
        result = run_backend(resources.farm, resources.home, backend, operations, rounds)
        finish()
        lines.append(line(backend, result))
        results.append({"backend": backend, **result})
    return lines, results


def main(argv: Sequence[str] | None = None) -> int:
    """Run this case alone: its own databases, dropped at the end."""

    from tests.benchmarks import seed

    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.batch_cases")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--operations", type=int, default=OPERATIONS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    with seed.standalone_farm("batch") as (farm, _, home):
        for backend in backends:
            print(line(backend, run_backend(farm, home, backend, args.operations, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
