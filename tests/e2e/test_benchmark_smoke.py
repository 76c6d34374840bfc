"""A tiny run of the benchmark runner's table: its output is checked, never its timings.

``python -m tests.benchmarks`` (issue 5) is not part of the default test run;
this is.  It runs the runner's table cases (``--cases`` of
``tests.benchmarks.cases.TABLE_CASES``) at 200 audit rows with every fixed
size scaled down 100 times (10 users, 100 imported users, reference logs of
100 and 1,000 rows), one timed run per command, on both backends, and
checks that:

* the table has its header and exactly the expected rows (every case, at
  every size and backend where it applies, and no other);
* every number parses, every ratio is vutf / baseline, ``met?`` agrees with
  the target, and no case failed;
* the ``--json`` file says the same, with the raw samples behind each median,
  and the cases that share a measurement (verify's baseline is export's
  subject, memory at the reference size is compared with itself) agree.

No timing is asserted anywhere: on a shared two-core machine any threshold
would be a coin toss, and the targets are for the 10k-1M sizes anyway.  The
cases the runner reports as notes under its table run in
``test_benchmark_notes_smoke.py``, a process of their own that the other test
worker can run at the same time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.cases import TABLE_CASES
from tests.e2e.harness import run_benchmarks

HEADER = (
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
ROWS = 200
LIST_REFERENCE = 100  # 10,000 x 0.01
MEMORY_REFERENCE = 1_000  # 100,000 x 0.01
SIZES = sorted({ROWS, LIST_REFERENCE, MEMORY_REFERENCE})

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?) (s|MiB)$")
_RATIO = re.compile(r"^(\d+(?:\.\d+)?)x$")
_TARGET = re.compile(r"^<= (\d+\.\d+)x(?: and <= (\d+) MiB)?$")

pytestmark = pytest.mark.slow


def expected_rows(backends: tuple[str, ...]) -> set[tuple[str, str, str]]:
    rows = {
        ("startup.help", "-", "-"),
        ("startup.version", "-", "-"),
        ("users.create", "-", "sqlite"),  # vs Django, on SQLite whatever the backends
        ("db.upgrade", "-", "sqlite"),
        ("users.import-plain", "10 users", backends[0]),
    }
    for backend in backends:
        rows.add(("users.list", "10 users", backend))
        if shutil.which("psql" if backend == "postgresql" else "sqlite3"):
            rows.add(("users.import-hashed", "100 users", backend))
        export_baseline = shutil.which("psql" if backend == "postgresql" else "sqlite3")
        for size in SIZES:
            label = f"{size} rows"
            cases = ["audit.verify", "memory.export", "memory.verify", "audit.list-cursor"]
            if export_baseline:
                cases.append("audit.export")
            if size != LIST_REFERENCE:
                cases.append("audit.list-filtered")
            rows.update((case, label, backend) for case in cases)
    return rows


def parse_table(stdout: str) -> list[dict[str, str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert len(lines) >= 3, stdout
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    assert tuple(cells[0]) == HEADER
    assert all(set(cell) <= set("-:") for cell in cells[1]), lines[1]
    rows = []
    for row in cells[2:]:
        assert len(row) == len(HEADER), row
        rows.append(dict(zip(HEADER, row, strict=True)))
    return rows


def quantity(text: str) -> tuple[float, str]:
    match = _QUANTITY.match(text)
    assert match, f"not a number with a unit: {text!r}"
    return float(match.group(1)), match.group(2)


def check_the_table_has_every_expected_case_and_nothing_else(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    result, _ = run
    rows = parse_table(result.stdout)
    found = [(row["case"], row["size"], row["backend"]) for row in rows]
    assert len(found) == len(set(found)), "a case appears twice"
    assert set(found) == expected_rows(backends)
    assert "error" not in result.stderr.lower()


def check_every_number_parses_and_every_ratio_is_vutf_over_baseline(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, _ = run
    for row in parse_table(result.stdout):
        vutf, unit = quantity(row["vutf median"])
        baseline, baseline_unit = quantity(row["baseline median"])
        assert unit == baseline_unit == ("MiB" if row["case"].startswith("memory.") else "s")
        assert vutf > 0, row
        assert baseline > 0, row
        ratio_match = _RATIO.match(row["ratio"])
        assert ratio_match, row
        shown_ratio = ratio_match.group(1)
        # The medians are shown to 4 significant digits (each off by at most
        # 0.05%), the ratio rounded to the decimals it shows: the shown ratio
        # is the quotient of the shown medians up to those roundings.
        decimals = len(shown_ratio.partition(".")[2])
        rounding = 0.5 * 10**-decimals
        quotient = vutf / baseline
        assert abs(float(shown_ratio) - quotient) <= rounding + 0.0011 * quotient + 1e-9, row
        target_match = _TARGET.match(row["target"])
        assert target_match, row
        peak, peak_unit = quantity(row["peak memory"])
        assert peak_unit == "MiB", row
        assert 1 < peak < 4096, row
        assert row["met?"] in ("yes", "NO"), row
        assert float(target_match.group(1)) > 0
        limit = target_match.group(2)
        if row["case"].startswith("memory."):
            assert limit is not None
            assert peak == pytest.approx(vutf, abs=0.06)
        else:
            assert limit is None


def check_the_json_file_matches_the_table_and_holds_the_samples(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, document = run
    table = parse_table(result.stdout)
    results = document["results"]
    assert [(r["case"], r["size"], r["backend"]) for r in results] == [
        (row["case"], row["size"], row["backend"]) for row in table
    ]
    assert document["meta"]["rows"] == [ROWS]
    assert document["meta"]["repeat"] == 1
    for entry, row in zip(results, table, strict=True):
        assert entry["error"] is None, entry
        assert entry["runs"] == 1
        assert entry["ratio"] == pytest.approx(entry["vutf"] / entry["baseline"], rel=1e-12)
        met = entry["ratio"] <= entry["target"]
        if entry["limit_mib"] is not None:
            met = met and entry["vutf"] <= entry["limit_mib"]
        assert entry["met"] is met
        assert (row["met?"] == "yes") is met
        assert entry["vutf_samples"] == [entry["vutf"]]
        assert entry["baseline_samples"] == [entry["baseline"]]
        if entry["kind"] == "time":
            assert entry["vutf_cpu_median"] > 0
            assert entry["baseline_cpu_median"] >= 0
        else:
            assert entry["vutf_cpu_median"] is None
        assert entry["vutf_command"]
        assert entry["baseline_command"]


def check_cases_that_share_a_measurement_agree(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    _, document = run
    by_key = {(r["case"], r["size"], r["backend"]): r for r in document["results"]}
    for backend in backends:
        for size in SIZES:
            label = f"{size} rows"
            verify = by_key[("audit.verify", label, backend)]
            export = by_key.get(("audit.export", label, backend))
            if export is not None:
                # verify is measured against the very export runs of its row.
                assert verify["baseline"] == export["vutf"]
            reference = f"{MEMORY_REFERENCE} rows"
            for case in ("memory.export", "memory.verify"):
                memory = by_key[(case, label, backend)]
                at_reference = by_key[(case, reference, backend)]
                assert memory["baseline"] == at_reference["vutf"]
                if size == MEMORY_REFERENCE:
                    assert memory["ratio"] == 1.0


def test_a_tiny_run_of_the_table(benchmark_backends: tuple[str, ...], tmp_path: Path) -> None:
    """One runner process, every check on it (one test: xdist runs it on one worker, once)."""
    backends = benchmark_backends
    # The notes' cases run in test_benchmark_notes_smoke.py.
    arguments = ["--rows", str(ROWS), "--scale", "0.01", "--cases", ",".join(TABLE_CASES)]
    run = run_benchmarks(backends, arguments, tmp_path / "results.json")
    check_the_table_has_every_expected_case_and_nothing_else(run, backends)
    check_every_number_parses_and_every_ratio_is_vutf_over_baseline(run)
    check_the_json_file_matches_the_table_and_holds_the_samples(run)
    check_cases_that_share_a_measurement_agree(run, backends)
