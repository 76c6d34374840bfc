"""The benchmark runner behind ``python -m tests.benchmarks``.

::

    python -m tests.benchmarks --rows 10000,100000,1000000 --backend both
    python -m tests.benchmarks --rows 1000000 --backend postgresql --cases 'audit.*'

What it does:

1. creates its own databases (PostgreSQL: ``vutf_bench_<random>_*`` on the
   server of ``VUTF_TEST_POSTGRES_URL``; SQLite: files in a temporary
   directory), migrated by the installed ``vutf db upgrade``, and seeds them
   (:mod:`tests.benchmarks.seed`: users, audit rows with a valid hash chain,
   bulk-loaded);
2. runs every case (:mod:`tests.benchmarks.cases`) as whole processes of the
   installed ``vutf`` and of its baseline, interleaved, ``--repeat`` times
   each (3 for the 1M-row export/verify and the production-argon2 import),
   after ``--warmup`` untimed rounds; stdout goes to /dev/null, wall time is
   ``perf_counter`` around the process, peak memory is the child's
   ``ru_maxrss`` from ``wait4`` (both taken by :mod:`tests.benchmarks.launcher`,
   a small process of its own, so the runner's memory does not leak into it);
3. prints one table on stdout (case, size, backend, vutf median, baseline
   median, ratio, target, peak memory, met?), writes ``--json`` if asked, and
   drops its databases (also on Ctrl-C).

Progress goes to stderr.  The exit status is 0 when every case ran (whether
or not its target was met), 1 when a command failed, 2 for bad arguments or
an unreachable PostgreSQL, 130 when interrupted.  Timing assertions belong
to nobody: the table is the result.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

from tests.benchmarks import (
    auth_timing,
    batch_cases,
    declarative_scale,
    seed,
    verify_throughput,
)
from tests.benchmarks import cases as C
from tests.benchmarks.environment import postgres_admin_url, python_executable
from tests.benchmarks.settings import HEAVY_REPEAT, HEAVY_ROWS, Settings, parse_args

MIB: Final = 1024.0  # ru_maxrss is in KiB on Linux


# -- measuring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kib: int
    cpu_seconds: float


class CommandFailed(RuntimeError):
    pass


LAUNCHER: Final = Path(__file__).resolve().with_name("launcher.py")


def run_once(command: C.Command, workdir: Path, timeout: float) -> Sample:
    """Run ``command`` once as a whole process: wall time and the child's peak RSS.

    The command is started by :mod:`tests.benchmarks.launcher`, a small
    process of its own, so that its peak RSS is its own (see there); the
    launcher's start-up is not in the time.
    """
    if command.before is not None:
        command.before()
    err_path = workdir / "last-stderr.txt"
    launcher = subprocess.Popen(
        [
            python_executable(),
            "-I",
            "-S",
            str(LAUNCHER),
            str(timeout),
            str(err_path),
            *command.argv,
        ],
        env=dict(command.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    try:
        out, err = launcher.communicate(timeout=timeout + 60)
    except BaseException:
        # SIGTERM makes the launcher kill the command before it exits.
        launcher.terminate()
        launcher.wait()
        raise
    if launcher.returncode != 0:
        raise CommandFailed(f"{command.label}: the launcher failed: {err.strip()}")
    report = json.loads(out)
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    if report["exit_code"] != 0:
        tail = stderr.strip()[-1500:] or "(nothing on stderr)"
        raise CommandFailed(f"{command.label} exited {report['exit_code']}: {tail}")
    return Sample(
        float(report["seconds"]), int(report["max_rss_kib"]), float(report["cpu_seconds"])
    )


@dataclass
class Measurements:
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def measure(plan: C.Plan, workdir: Path, timeout: float) -> Measurements:
    measured = Measurements()
    for number, group in enumerate(plan.groups, 1):
        finish = seed.progress(
            f"[{number}/{len(plan.groups)}] {group.name}: "
            f"{len(group.commands)} commands x {group.warmup}+{group.repeat} runs"
        )
        for command in group.commands:
            measured.samples[command.key] = []
            measured.labels[command.key] = command.label
        for round_index in range(group.warmup + group.repeat):
            # Alternate the order every round so that drift (caches, other
            # load on the machine) does not favour one side.
            order = group.commands if round_index % 2 == 0 else group.commands[::-1]
            for command in order:
                if command.key in measured.errors:
                    continue
                try:
                    sample = run_once(command, workdir, timeout)
                except CommandFailed as exc:
                    measured.errors[command.key] = str(exc)
                    sys.stderr.write(f"[bench] ERROR {exc}\n")
                    continue
                if round_index >= group.warmup:
                    measured.samples[command.key].append(sample)
        finish()
    return measured


# -- results -------------------------------------------------------------------------------
@dataclass
class Result:
    case: str
    size: str
    backend: str
    kind: str
    unit: str
    vutf: float | None
    baseline: float | None
    ratio: float | None
    target: float
    limit_mib: float | None
    peak_mib: float | None
    met: bool | None
    runs: int
    vutf_command: str
    baseline_command: str
    error: str | None = None
    vutf_samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    # CPU time (user + system) of the processes, in seconds, for the time
    # cases: much less disturbed than wall time by other load on the machine,
    # but blind to work done in the database server (psql's COPY, say).
    vutf_cpu_median: float | None = None
    baseline_cpu_median: float | None = None
    versus: str = "baseline"

    @property
    def label(self) -> str:
        """The case as the table names it."""
        return self.case if self.versus == "baseline" else f"{self.case} vs {self.versus}"


def _peak_mib(samples: Sequence[Sample]) -> float:
    return max(s.max_rss_kib for s in samples) / MIB


def compute_results(plan: C.Plan, measured: Measurements) -> list[Result]:
    results = []
    for case in plan.cases:
        subject = measured.samples.get(case.subject, [])
        baseline = measured.samples.get(case.baseline, [])
        error = measured.errors.get(case.subject) or measured.errors.get(case.baseline)
        result = Result(
            case=case.case,
            size=case.size,
            backend=case.backend,
            kind=case.kind,
            unit="s" if case.kind == "time" else "MiB",
            vutf=None,
            baseline=None,
            ratio=None,
            target=case.target,
            limit_mib=case.limit_mib,
            peak_mib=_peak_mib(subject) if subject else None,
            met=None,
            runs=len(subject),
            vutf_command=measured.labels.get(case.subject, case.subject),
            baseline_command=case.baseline_label,
            error=error,
            versus=case.versus,
        )
        if error is None and subject and baseline:
            if case.kind == "time":
                result.vutf = statistics.median(s.seconds for s in subject)
                result.baseline = statistics.median(s.seconds for s in baseline)
                result.vutf_samples = [s.seconds for s in subject]
                result.baseline_samples = [s.seconds for s in baseline]
                result.vutf_cpu_median = statistics.median(s.cpu_seconds for s in subject)
                result.baseline_cpu_median = statistics.median(s.cpu_seconds for s in baseline)
            else:
                result.vutf = _peak_mib(subject)
                result.baseline = _peak_mib(baseline)
                result.vutf_samples = [s.max_rss_kib / MIB for s in subject]
                result.baseline_samples = [s.max_rss_kib / MIB for s in baseline]
            result.ratio = result.vutf / result.baseline if result.baseline > 0 else math.inf
            met = result.ratio <= case.target
            if case.limit_mib is not None:
                met = met and result.vutf <= case.limit_mib
            result.met = met
        elif error is None:
            result.error = "no samples"
        results.append(result)
    return sorted(results, key=_table_order)


def cpu_notes(results: Sequence[Result]) -> list[str]:
    """The CPU ratio beside each time case's wall ratio, one note each.

    Only the processes' own CPU: a database server's work (all of psql's
    COPY) is in neither figure, so the ratio says most where both sides do
    their work in the process (SQLite, vutf vs an older vutf).
    """
    notes = []
    for result in results:
        vutf, baseline = result.vutf_cpu_median, result.baseline_cpu_median
        if result.kind != "time" or vutf is None or baseline is None or baseline <= 0:
            continue
        notes.append(
            f"cpu {result.label} ({result.backend}, {result.size}): vutf {_significant(vutf)} s, "
            f"baseline {_significant(baseline)} s, {vutf / baseline:.2f}x "
            "(the processes' own CPU; a database server's is in neither)"
        )
    return notes


def _table_order(result: Result) -> tuple[int, int, int, bool]:
    backend = ("-", "sqlite", "postgresql").index(result.backend)
    size = int(result.size.split()[0]) if result.size[:1].isdigit() else 0
    return C.CASE_IDS.index(result.case), backend, size, result.versus != "baseline"


def _significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits and no exponent."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


TABLE_HEADER: Final = (
    "case",
    "size",
    "backend",
    "vutf median",
    "baseline median",
    "ratio",
    "target",
    "peak memory",
    "met?",
)


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        target = f"<= {r.target:.2f}x"
        if r.limit_mib is not None:
            target += f" and <= {r.limit_mib:.0f} MiB"
        peak = "-" if r.peak_mib is None else f"{r.peak_mib:.1f} MiB"
        if r.error is not None or r.vutf is None or r.baseline is None or r.ratio is None:
            rows.append((r.label, r.size, r.backend, "error", "error", "-", target, peak, "error"))
            continue
        rows.append(
            (
                r.label,
                r.size,
                r.backend,
                f"{_significant(r.vutf)} {r.unit}",
                f"{_significant(r.baseline)} {r.unit}",
                f"{r.ratio:.3f}x" if r.ratio < 10 else f"{r.ratio:.1f}x",
                target,
                peak,
                "yes" if r.met else "NO",
            )
        )
    return rows


def render_table(results: Sequence[Result]) -> str:
    """A Markdown (pipe) table, aligned for reading in a terminal."""
    rows = [TABLE_HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    numeric = {3, 4, 5, 7}

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "| " + " | ".join(cells) + " |"

    separator = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(rows[0]), separator, *(line(row) for row in rows[1:])])


# -- main ------------------------------------------------------------------------------------
@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) end the run like Ctrl-C, so the databases are dropped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _metadata(settings: Settings, resources: seed.Resources, started: float) -> dict[str, Any]:
    from vutf_cli import __version__

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "vutf_version": __version__,
        "git_revision": _git_revision(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rows": list(settings.rows),
        "backends": list(settings.backends),
        "repeat": settings.repeat,
        "warmup": settings.warmup,
        "scale": settings.scale,
        "seed_seconds": resources.seed_seconds,
        "seed_cpu_seconds": resources.seed_cpu_seconds,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run(settings: Settings) -> int:
    started = time.perf_counter()
    load_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="vutf-bench-"))
    home = workdir / "home"
    (home / "data").mkdir(parents=True)
    farm = seed.DatabaseFarm(workdir)
    resources = seed.Resources(workdir, home, farm)
    try:
        if "postgresql" in settings.backends:
            problem = farm.postgres_reachable()
            if problem is not None:
                sys.stderr.write(
                    f"error: PostgreSQL at {postgres_admin_url()} is unreachable ({problem}); "
                    "set VUTF_TEST_POSTGRES_URL or use --backend sqlite\n"
                )
                return 2
        seed.prepare(settings, resources)
        plan = C.Planner(settings, resources).build()
        measured = measure(plan, workdir, settings.timeout)
        results = compute_results(plan, measured)
        verify_lines: list[str] = []
        verify_results: list[dict[str, Any]] = []
        if settings.wants(verify_throughput.CASE):
            verify_lines, verify_results = verify_throughput.measure(settings, resources)
        auth_lines: list[str] = []
        auth_results: list[dict[str, Any]] = []
        if settings.wants(auth_timing.CASE):
            auth_lines, auth_results = auth_timing.measure(settings, resources)
        batch_lines: list[str] = []
        batch_results: list[dict[str, Any]] = []
        if settings.wants(batch_cases.CASE):
            batch_lines, batch_results = batch_cases.measure(settings, resources)
        declarative_lines: list[str] = []
        declarative_results: list[dict[str, Any]] = []
        if settings.wants(declarative_scale.CASE):
            declarative_lines, declarative_results = declarative_scale.measure(settings, resources)
        meta = _metadata(settings, resources, started)
        print(render_table(results))
        notes = list(resources.notes) + verify_lines + auth_lines + batch_lines
        notes += declarative_lines
        notes += cpu_notes(results)
        notes.append(
            f"load average at start {load_start[0]:.2f}, at end {meta['load_average_end'][0]:.2f} "
            f"({meta['cpus']} cpus); medians of {settings.repeat} runs "
            f"({HEAVY_REPEAT} for {HEAVY_ROWS}+ rows and the argon2 import)"
        )
        for note in notes:
            print(f"note: {note}")
        sys.stdout.flush()
        if settings.json_path is not None:
            document = {
                "meta": meta,
                "notes": notes,
                "results": [asdict(result) for result in results],
                "verify_throughput": verify_results,
                "auth_timing": auth_results,
                "batch": batch_results,
                "declarative": declarative_results,
            }
            settings.json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        failed = [r for r in results if r.error is not None]
        for result in failed:
            sys.stderr.write(
                f"error: {result.case} ({result.backend}, {result.size}): {result.error}\n"
            )
        return 1 if failed else 0
    finally:
        if settings.keep:
            sys.stderr.write(
                f"[bench] kept {workdir} and the databases vutf_bench_{farm.token}_*\n"
            )
        else:
            for problem in farm.close():
                sys.stderr.write(f"warning: {problem}\n")
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    with _terminate_as_interrupt():
        try:
            return run(settings)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted: databases dropped\n")
            return 130
        except seed.SeedError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
