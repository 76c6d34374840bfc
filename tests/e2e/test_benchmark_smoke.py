"""A tiny run of the benchmark runner: its output is checked, never its timings.

``python -m tests.benchmarks`` (issue 5) is not part of the default test run;
this is.  It runs the runner at 200 audit rows with every fixed size scaled
down 100 times (10 users, 100 imported users, reference logs of 100 and 1,000
rows), one timed run per command, on both backends, and checks that:

* the table has its header and exactly the expected rows (every case, at
  every size and backend where it applies, and no other);
* every number parses, every ratio is vutf / baseline, ``met?`` agrees with
  the target, and no case failed;
* the ``--json`` file says the same, with the raw samples behind each median,
  and the cases that share a measurement (verify's baseline is export's
  subject, memory at the reference size is compared with itself) agree.

No timing is asserted anywhere: on a shared two-core machine any threshold
would be a coin toss, and the targets are for the 10k-1M sizes anyway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
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
TIMEOUT = 600

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


@pytest.fixture(scope="module")
def backends(postgres_template: str | None) -> tuple[str, ...]:
    # postgres_template is None when the server is unreachable (and fails the
    # test when VUTF_REQUIRE_POSTGRES=1): then only SQLite is benchmarked.
    return ("sqlite",) if postgres_template is None else ("sqlite", "postgresql")


@pytest.fixture(scope="module")
def smoke_run(
    backends: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    json_path = tmp_path_factory.mktemp("bench") / "results.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("VUTF_")}
    if "VUTF_TEST_POSTGRES_URL" in os.environ:
        env["VUTF_TEST_POSTGRES_URL"] = os.environ["VUTF_TEST_POSTGRES_URL"]
    result = _run_letting_it_clean_up(
        [
            sys.executable,
            "-m",
            "tests.benchmarks",
            "--rows",
            str(ROWS),
            "--backend",
            "both" if len(backends) == 2 else backends[0],
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--scale",
            "0.01",
            "--json",
            str(json_path),
        ],
        env,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result, json.loads(json_path.read_text(encoding="utf-8"))


def test_the_table_has_every_expected_case_and_nothing_else(
    smoke_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    result, _ = smoke_run
    rows = parse_table(result.stdout)
    found = [(row["case"], row["size"], row["backend"]) for row in rows]
    assert len(found) == len(set(found)), "a case appears twice"
    assert set(found) == expected_rows(backends)
    assert "error" not in result.stderr.lower()


def test_every_number_parses_and_every_ratio_is_vutf_over_baseline(
    smoke_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, _ = smoke_run
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


def test_the_json_file_matches_the_table_and_holds_the_samples(
    smoke_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, document = smoke_run
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


def test_cases_that_share_a_measurement_agree(
    smoke_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    _, document = smoke_run
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


def _run_letting_it_clean_up(
    args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The runner, stopped with SIGTERM on timeout: it then drops its databases and files."""
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"the runner took over {TIMEOUT} s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
