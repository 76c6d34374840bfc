"""The runner's command line and the sizes it implies."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.benchmarks.cases import CASE_IDS, SIZED_CASES, select_cases

# The fixed sizes of the issue; --scale multiplies them (for the smoke run).
BASE_USERS: Final = 1_000
BASE_IMPORT_HASHED: Final = 10_000
BASE_IMPORT_PLAIN: Final = 1_000
BASE_LIST_REFERENCE: Final = 10_000
BASE_MEMORY_REFERENCE: Final = 100_000
# From this many audit rows on, export/verify run HEAVY_REPEAT times, unwarmed.
HEAVY_ROWS: Final = 1_000_000
HEAVY_REPEAT: Final = 3


@dataclass(frozen=True)
class Settings:
    rows: tuple[int, ...]
    backends: tuple[str, ...]
    repeat: int
    warmup: int
    cases: tuple[str, ...]
    json_path: Path | None
    scale: float
    seed_workers: int
    timeout: float
    keep: bool
    before: Path | None = None

    def scaled(self, base: int, minimum: int) -> int:
        return max(minimum, round(base * self.scale))

    @property
    def users(self) -> int:
        """Users in every seeded database (and the subjects of the audit rows)."""
        return self.scaled(BASE_USERS, 10)

    @property
    def import_hashed(self) -> int:
        return self.scaled(BASE_IMPORT_HASHED, 10)

    @property
    def import_plain(self) -> int:
        return self.scaled(BASE_IMPORT_PLAIN, 4)

    @property
    def list_reference(self) -> int:
        """The audit size that ``audit.list-filtered`` is compared with."""
        return self.scaled(BASE_LIST_REFERENCE, 10)

    @property
    def memory_reference(self) -> int:
        """The audit size that the ``memory.*`` cases are compared with."""
        return self.scaled(BASE_MEMORY_REFERENCE, 10)

    def wants(self, *case_ids: str) -> bool:
        return any(case in self.cases for case in case_ids)

    def heavy(self, rows: int) -> bool:
        return rows >= HEAVY_ROWS

    @property
    def heavy_repeat(self) -> int:
        return min(self.repeat, HEAVY_REPEAT)

    def audit_sizes(self) -> list[int]:
        """Every audit size to seed: the asked ones plus the references the cases need."""
        if not any(case in SIZED_CASES for case in self.cases):
            return []
        sizes = set(self.rows)
        if self.wants("memory.export", "memory.verify"):
            sizes.add(self.memory_reference)
        if self.wants("audit.list-filtered"):
            sizes.add(self.list_reference)
        return sorted(sizes)


def row_counts(text: str) -> tuple[int, ...]:
    """``10000,100k,1m`` -> ``(10000, 100000, 1000000)``."""
    counts = []
    for raw in text.split(","):
        part = raw.strip().lower().replace("_", "")
        if not part:
            continue
        factor = 1
        if part.endswith("k"):
            factor, part = 1_000, part[:-1]
        elif part.endswith("m"):
            factor, part = 1_000_000, part[:-1]
        try:
            value = int(float(part) * factor)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a row count: {raw.strip()!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"row counts must be positive, got {value}")
        counts.append(value)
    if not counts:
        raise argparse.ArgumentTypeError("give at least one row count")
    return tuple(sorted(set(counts)))


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks",
        description="Benchmark the installed vutf against baselines measured in the same run.",
        epilog="cases: " + ", ".join(CASE_IDS),
    )
    parser.add_argument(
        "--rows",
        type=row_counts,
        default=(10_000,),
        help="audit log sizes, comma-separated (10000,100k,1m); default 10000",
    )
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="default both"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help=f"timed runs per command, the median is reported; default 5 "
        f"(at most {HEAVY_REPEAT} for {HEAVY_ROWS}+ rows and the argon2 import)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed rounds before the timed ones (none for the heavy cases); default 1",
    )
    parser.add_argument(
        "--cases", default=None, help="comma-separated globs over the case ids, e.g. 'audit.*'"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the fixed sizes (1,000 users, 10,000/1,000 imported users, the "
        "10k/100k reference logs), e.g. 0.01 for a smoke run; default 1",
    )
    parser.add_argument(
        "--seed-workers",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="processes making audit rows while seeding; default one per core",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before one run is killed"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases and files, and say where"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="VUTF",
        help="an older vutf executable (e.g. from another virtualenv): every vutf command "
        "also runs with it, interleaved, and each case gains a row 'CASE vs before'",
    )
    args = parser.parse_args(argv)
    if args.before is not None and not os.access(args.before, os.X_OK):
        parser.error(f"--before {args.before}: not an executable file")
    if args.repeat < 1 or args.warmup < 0 or args.scale <= 0 or args.seed_workers < 1:
        parser.error("--repeat and --seed-workers must be >= 1, --warmup >= 0, --scale > 0")
    try:
        selected = select_cases(args.cases)
    except ValueError as exc:
        parser.error(str(exc))
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    return Settings(
        rows=args.rows,
        backends=backends,
        repeat=args.repeat,
        warmup=args.warmup,
        cases=tuple(selected),
        json_path=args.json,
        scale=args.scale,
        seed_workers=args.seed_workers,
        timeout=args.timeout,
        keep=args.keep,
        before=args.before,
    )
