"""A tiny run of the benchmark runner's notes: the cases it reports under its table.

``verify.throughput``, ``auth.timing``, ``batch.users-create`` and
``declarative.scale`` are not rows of the table (``test_benchmark_smoke.py``
checks those) but notes, each with a section of its own in the ``--json``
file.  Here the runner runs only them (``--cases``), at their smallest sizes
(``--scale 0.001``), on both backends, and the test checks that each says
what it measured and that the counts behind it add up: one audit row per
audited call, the sizes asked for, every step timed.  No timing is asserted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.auth_timing import WARMUP as AUTH_WARMUP
from tests.benchmarks.cases import NOTE_CASES
from tests.e2e.harness import run_benchmarks

pytestmark = pytest.mark.slow

AUTH_KINDS = ("unknown user", "wrong password", "weak stored hash", "locked user")
DECLARATIVE_STEPS = ("plan_empty", "apply", "plan_applied", "apply_no_passwords", "imperative")


def check_only_notes_and_no_table_rows(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, document = run
    assert document["results"] == []
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 2, table  # the header and its rule
    notes = [line.removeprefix("note: ") for line in result.stdout.splitlines()]
    for case in NOTE_CASES:
        assert any(note.startswith(case) for note in notes), (case, result.stdout)
    assert document["notes"] == [n for n in notes if n and not n.startswith("|")]


def check_verify_throughput_wrote_one_row_per_audited_call(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    result, document = run
    variants = document["verify_throughput"]
    if "postgresql" not in backends:
        assert variants == []
        assert "verify.throughput skipped" in result.stdout
        return
    assert [(v["threads"], v["record"]) for v in variants] == [(8, True), (1, True), (8, False)]
    for variant in variants:
        assert variant["calls"] >= variant["threads"]
        assert 0 < variant["p50_ms"] <= variant["p99_ms"] <= variant["max_ms"]
        if variant["record"]:
            assert variant["audit_rows_written"] == variant["calls"] + variant["warmup_calls"]
            assert 1 <= variant["commits"] <= variant["audit_rows_written"]
        else:
            assert variant["audit_rows_written"] == 0
    assert "verify.throughput goal" in result.stdout


def check_auth_timing_measured_every_kind_on_each_backend(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    _, document = run
    timings = document["auth_timing"]
    assert [t["backend"] for t in timings] == list(backends)
    for timing in timings:
        assert set(timing["medians_ms"]) == set(AUTH_KINDS)
        assert all(value > 0 for value in timing["medians_ms"].values())
        assert timing["ratios"]["wrong password"] == 1.0
        # Each check of each kind, warm-up rounds included, is one user.login row.
        assert timing["audit_rows_written"] % len(AUTH_KINDS) == 0
        assert timing["audit_rows_written"] >= timing["checks"] * len(AUTH_KINDS)
        assert timing["audit_rows_written"] == (timing["checks"] + AUTH_WARMUP) * len(AUTH_KINDS)


def check_batch_and_declarative_ran_at_the_sizes_asked(
    run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    backends: tuple[str, ...],
) -> None:
    _, document = run
    batches = document["batch"]
    assert [b["backend"] for b in batches] == list(backends)
    for batch in batches:
        assert batch["operations"] == 5  # the smallest size
        assert batch["wall_ratio"] == pytest.approx(
            batch["wall_s"]["batch"] / batch["wall_s"]["processes"]
        )
    declarative = document["declarative"]
    assert [d["backend"] for d in declarative] == list(backends)
    for entry in declarative:
        assert (entry["users"], entry["roles"], entry["keys"]) == (10, 2, 20)
        assert set(entry["steps"]) == set(DECLARATIVE_STEPS)
        assert all(step["wall_s"] > 0 for step in entry["steps"].values())


def test_a_tiny_run_of_the_notes(benchmark_backends: tuple[str, ...], tmp_path: Path) -> None:
    """One runner process, every check on it (one test: xdist runs it on one worker, once)."""
    backends = benchmark_backends
    arguments = ["--scale", "0.001", "--cases", ",".join(NOTE_CASES)]
    run = run_benchmarks(backends, arguments, tmp_path / "results.json")
    check_only_notes_and_no_table_rows(run)
    check_verify_throughput_wrote_one_row_per_audited_call(run, backends)
    check_auth_timing_measured_every_kind_on_each_backend(run, backends)
    check_batch_and_declarative_ran_at_the_sizes_asked(run, backends)
